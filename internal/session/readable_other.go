//go:build !unix

package session

// waitReadable is a no-op where the socket cannot be peeked at: the reader
// then parks in the read itself (a deeper stack, the same behaviour).
func (c *batchConn) waitReadable() {}
