package testenv

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// Relay is a TCP relay in front of a real server, for tests whose network
// must misbehave: Hold delays what the server sends (a stalled network) and
// SetDown resets every connection and refuses new ones (a dead server).
type Relay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cond   *sync.Cond
	held   bool
	hold   []byte // requests holding this are held (HoldRequests)
	heldN  int    // how many requests HoldRequests held
	down   bool
	conns  map[net.Conn]bool
}

// NewRelay listens on a loopback port and relays to target until the test ends.
func NewRelay(tb testing.TB, target string) *Relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &Relay{ln: ln, target: target, conns: map[net.Conn]bool{}}
	r.cond = sync.NewCond(&r.mu)
	tb.Cleanup(func() { ln.Close(); r.Release(); r.SetDown(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.relay(c)
		}
	}()
	return r
}

// Addr is the relay's host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Hold keeps what the server sends until Release.
func (r *Relay) Hold() { r.mu.Lock(); r.held = true; r.mu.Unlock() }

// HoldRequests keeps every chunk the client sends that contains pattern
// (and what follows it on that connection) from reaching the server until
// Release: a client paused just before a statement, with its transaction
// open and nothing locked yet.
func (r *Relay) HoldRequests(pattern []byte) { r.mu.Lock(); r.hold = pattern; r.mu.Unlock() }

// HeldRequests counts the requests HoldRequests has held.
func (r *Relay) HeldRequests() int { r.mu.Lock(); defer r.mu.Unlock(); return r.heldN }

// Release delivers what was held and stops holding.
func (r *Relay) Release() {
	r.mu.Lock()
	r.held, r.hold = false, nil
	r.cond.Broadcast()
	r.mu.Unlock()
}

// SetDown(true) resets every open connection and refuses new ones, as a
// stopped server would; SetDown(false) lets connections through again.
func (r *Relay) SetDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
	if down {
		for c := range r.conns {
			reset(c)
		}
		clear(r.conns)
	}
}

// requests copies what the client sends, holding chunks that match hold.
func (r *Relay) requests(srv, client net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			r.mu.Lock()
			if r.hold != nil && bytes.Contains(buf[:n], r.hold) {
				r.heldN++
				for r.hold != nil {
					r.cond.Wait()
				}
			}
			r.mu.Unlock()
			if _, werr := srv.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// reset closes with RST, as a dead peer does, not with a clean FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (r *Relay) relay(client net.Conn) {
	r.mu.Lock()
	if r.down {
		r.mu.Unlock()
		reset(client)
		return
	}
	r.mu.Unlock()
	srv, err := net.Dial("tcp", r.target)
	if err != nil {
		client.Close()
		return
	}
	r.mu.Lock()
	r.conns[client], r.conns[srv] = true, true
	r.mu.Unlock()
	defer func() {
		client.Close()
		srv.Close()
		r.mu.Lock()
		delete(r.conns, client)
		delete(r.conns, srv)
		r.mu.Unlock()
	}()
	go func() { r.requests(srv, client); srv.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := srv.Read(buf)
		if n > 0 {
			r.mu.Lock()
			for r.held {
				r.cond.Wait()
			}
			r.mu.Unlock()
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
