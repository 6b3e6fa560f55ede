package session

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// The write deadline stays armed between passes: a write to a peer that
// stops reading still fails within the timeout, and one after an idle spell
// longer than the timeout is not refused by the deadline the last pass left.
func TestBatchConnWriteDeadline(t *testing.T) {
	const timeout = 200 * time.Millisecond
	pass := func(c *batchConn) error {
		c.begin()
		if err := c.appendText([][]byte{[]byte(`{"type":"ok"}`)}, 0); err != nil {
			return err
		}
		return c.flush(time.Now())
	}

	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	c := &batchConn{Conn: server, timeout: timeout}

	go io.ReadFull(client, make([]byte, 15)) // reads one pass, then nothing
	if err := pass(c); err != nil {
		t.Fatalf("first pass: %v", err)
	}
	time.Sleep(timeout + 50*time.Millisecond) // idle past the armed deadline
	got := make(chan error, 1)
	go func() { _, err := io.ReadFull(client, make([]byte, 15)); got <- err }()
	if err := pass(c); err != nil {
		t.Fatalf("a pass after an idle spell longer than the timeout: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	err := pass(c) // nobody reads now
	took := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a write nobody reads: %v, want a deadline error", err)
	}
	if took > timeout+time.Second {
		t.Fatalf("a stuck write failed after %v, timeout %v", took, timeout)
	}
}
