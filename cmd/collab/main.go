// Command collab is the collaborative campaign editing server. See run.go
// for the commands and config.go for the settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // campaign schedules name IANA time zones; do not depend on the host's
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h printed the settings: asked for, not a failure
		}
		fmt.Fprintln(os.Stderr, "collab:", err)
		os.Exit(1)
	}
}
