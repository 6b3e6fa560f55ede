package session

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/collab-dev/collab/internal/metrics"
)

// await waits until the socket has something to read and reads it ahead
// of the library (into ahead, or rerr for EOF and errors), or until a kick
// sets a past read deadline. The wait is the runtime's own (RawConn.Read
// parks on the netpoller), one call deep; it costs the same system calls
// as the library's read would: one that finds nothing, one that reads.
func (c *batchConn) await() {
	var buf *[]byte
	// Its error needs no look: a kick's deadline is what endWait clears,
	// and a closed connection is what the library's read reports next.
	c.rc.Read(func(fd uintptr) bool {
		if buf == nil {
			buf = aheadBufs.Get().(*[]byte)
		}
		for {
			n, err := unix.Read(int(fd), *buf)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false
			case err != nil:
				c.setAhead(nil, 0, os.NewSyscallError("read", err))
			case n == 0:
				c.setAhead(nil, 0, io.EOF)
			default:
				c.setAhead(buf, n, nil)
				buf = nil
			}
			return true
		}
	})
	if buf != nil {
		aheadBufs.Put(buf)
	}
}

func (c *idleRead) setAhead(buf *[]byte, n int, err error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if buf != nil {
		c.ahead, c.aheadBuf = (*buf)[:n], buf
	}
	c.rerr = err
}

// epollPoller watches parked sessions' sockets with one epoll instance;
// its goroutine starts a session's reader when its socket is readable.
// Each park registers the socket one-shot under a fresh token, so an event
// that races a session's end (or its socket's number taken by a new
// connection) finds no session and is dropped.
type epollPoller struct {
	epfd, evfd int
	log        *slog.Logger
	done       chan struct{}
	closeOnce  sync.Once

	mu     sync.Mutex // guards the following fields
	parked map[uint64]*Session
	next   uint64
	closed bool
}

const stopToken = 0

func newPoller(log *slog.Logger) (poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("idle poller: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("idle poller: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, stopToken)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("idle poller: watch eventfd: %w", err)
	}
	p := &epollPoller{epfd: epfd, evfd: evfd, log: log, done: make(chan struct{}), parked: map[uint64]*Session{}}
	go p.run()
	return p, nil
}

// setToken and token put a uint64 in epoll's 64-bit data (x/sys spells it
// as the two int32 fields Fd and Pad).
func setToken(ev *unix.EpollEvent, t uint64) {
	ev.Fd, ev.Pad = int32(uint32(t)), int32(uint32(t>>32))
}

func token(ev *unix.EpollEvent) uint64 { return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32 }

func (p *epollPoller) park(s *Session) bool {
	p.mu.Lock()
	if p.closed || s.ctx.Err() != nil {
		// An ending session is unparked by its context: one that ended
		// before it is in the map would wait for ever.
		p.mu.Unlock()
		return false
	}
	p.next++
	t := p.next
	p.parked[t] = s
	s.parkedAs = t
	p.mu.Unlock()
	metrics.SessionsParked.Inc()

	var cerr error
	err := s.raw.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
		setToken(&ev, t)
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		if cerr == unix.ENOENT {
			cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	if err == nil {
		err = cerr
	}
	if err == nil {
		return true
	}
	p.mu.Lock()
	took := p.take(t, s)
	p.mu.Unlock()
	if !took {
		return true // unparked meanwhile: a new reader runs
	}
	p.log.Debug("park session", "session", s.id, "err", err)
	return false
}

func (p *epollPoller) unpark(s *Session) {
	p.mu.Lock()
	took := p.take(s.parkedAs, s)
	p.mu.Unlock()
	if took {
		go s.read()
	}
}

// take removes s, parked as t, from the poller; false when it is not
// there (woken, or unparked, already). mu held.
func (p *epollPoller) take(t uint64, s *Session) bool {
	if t == 0 || p.parked[t] != s {
		return false
	}
	delete(p.parked, t)
	s.parkedAs = 0
	metrics.SessionsParked.Dec()
	return true
}

func (p *epollPoller) parkedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parked)
}

// run waits for parked sockets until close.
func (p *epollPoller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			p.log.Error("idle poller stopped", "err", err)
			p.stop()
			return
		}
		p.mu.Lock()
		for i := range events[:n] {
			t := token(&events[i])
			if t == stopToken {
				p.mu.Unlock()
				p.stop()
				return
			}
			if s := p.parked[t]; s != nil && p.take(t, s) {
				go s.read()
			}
		}
		p.mu.Unlock()
	}
}

// stop starts a reader for every session still parked (each ends as its
// context says, or waits on in the library) and closes the descriptors.
func (p *epollPoller) stop() {
	p.mu.Lock()
	p.closed = true
	for t, s := range p.parked {
		p.take(t, s)
		go s.read()
	}
	p.mu.Unlock()
	unix.Close(p.epfd)
	unix.Close(p.evfd)
}

// close stops the poller's goroutine and waits for it.
func (p *epollPoller) close() {
	p.closeOnce.Do(func() {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(p.evfd, one[:])
	})
	<-p.done
}
