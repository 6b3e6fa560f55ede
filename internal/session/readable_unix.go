//go:build unix

package session

import "syscall"

// waitReadable parks until the connection has something to read (a frame,
// the peer's close, an error) without reading it, on a shallow stack: see
// Session.reader. It peeks at the socket, and waits for the poller only on
// EAGAIN, as the runtime's own reads do, so data already there is never
// waited for.
func (c *batchConn) waitReadable() {
	if c.raw == nil || len(c.early) > 0 || c.br.Buffered() > 0 {
		return
	}
	var b [1]byte
	c.raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
	})
}
