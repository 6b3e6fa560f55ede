//go:build !linux

package session

import "log/slog"

// newPoller: no poller here; an idle session's reader waits in the
// library's read, on its own goroutine, as a busy one does.
func newPoller(*slog.Logger) (poller, error) { return nil, nil }

func (c *batchConn) await() {}
