package testenv

import (
	"io"
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

// Release delivers what was held and stops holding.
func (r *Relay) Release() { r.mu.Lock(); r.held = false; r.cond.Broadcast(); r.mu.Unlock() }

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
	go func() { io.Copy(srv, client); srv.Close() }()
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
