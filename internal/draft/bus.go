package draft

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// Bus delivers campaign events from Redis pub/sub to handlers on this node,
// over one connection. Per channel, messages arrive in the order Redis
// published them, which for updates is rev order (the edit script publishes
// inside its atomic step). A message can still be lost (a dropped
// connection): handlers get a nil message after every (re)subscription so
// they can check the log for a gap.
type Bus struct {
	ps  *redis.PubSub
	log *slog.Logger

	mu       sync.Mutex // guards the following fields
	handlers map[string]func([]byte)
	waiting  map[string][]chan struct{}

	done chan struct{}
	wg   sync.WaitGroup
}

// NewBus starts a Bus; Close stops it.
func (b *Buffer) NewBus(ctx context.Context, log *slog.Logger) *Bus {
	bus := &Bus{ps: b.rdb.Subscribe(ctx), log: log, handlers: map[string]func([]byte){},
		waiting: map[string][]chan struct{}{}, done: make(chan struct{})}
	bus.wg.Add(1)
	go bus.run()
	return bus
}

func (bus *Bus) run() {
	defer bus.wg.Done()
	ch := bus.ps.ChannelWithSubscriptions(redis.WithChannelSize(4096), redis.WithChannelHealthCheckInterval(5*time.Second))
	for {
		select {
		case <-bus.done:
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Message:
				bus.mu.Lock()
				fn := bus.handlers[m.Channel]
				bus.mu.Unlock()
				if fn != nil {
					// A view of the payload, not a copy: most messages
					// are dropped at once (a node's own updates), and the
					// others are only ever read. Strings are immutable,
					// so the view stays valid for whoever keeps it.
					fn(unsafe.Slice(unsafe.StringData(m.Payload), len(m.Payload)))
				}
			case *redis.Subscription:
				if m.Kind != "subscribe" {
					continue
				}
				bus.mu.Lock()
				fn := bus.handlers[m.Channel]
				waiters := bus.waiting[m.Channel]
				delete(bus.waiting, m.Channel)
				bus.mu.Unlock()
				for _, w := range waiters {
					close(w)
				}
				if fn != nil && len(waiters) == 0 {
					fn(nil) // a resubscription after a reconnect: check for a gap
				}
			}
		}
	}
}

// Subscribe routes the channel's messages to fn and returns once Redis has
// confirmed the subscription, so that nothing published afterwards is
// missed. fn runs on the Bus goroutine and must not block; msg may be kept
// but never written to.
func (bus *Bus) Subscribe(ctx context.Context, channel string, fn func(msg []byte)) error {
	w := make(chan struct{})
	bus.mu.Lock()
	bus.handlers[channel] = fn
	bus.waiting[channel] = append(bus.waiting[channel], w)
	bus.mu.Unlock()
	if err := bus.ps.Subscribe(ctx, channel); err != nil {
		bus.Unsubscribe(context.Background(), channel)
		return unavailable("subscribe "+channel, err)
	}
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		bus.Unsubscribe(context.Background(), channel)
		return unavailable("subscribe "+channel, ctx.Err())
	}
}

// Unsubscribe stops routing the channel.
func (bus *Bus) Unsubscribe(ctx context.Context, channel string) {
	bus.mu.Lock()
	delete(bus.handlers, channel)
	delete(bus.waiting, channel)
	bus.mu.Unlock()
	if err := bus.ps.Unsubscribe(ctx, channel); err != nil {
		bus.log.Debug("unsubscribe", "channel", channel, "err", err)
	}
}

// Close stops the Bus and waits for its goroutine.
func (bus *Bus) Close() error {
	close(bus.done)
	err := bus.ps.Close()
	bus.wg.Wait()
	return err
}

// Updates reads a campaign channel's message that carries updates, as the
// edit script publishes them: "@", the origin tag of the node that sent the
// batches, "\n", then the update messages joined by "\n" (JSON as the
// server encodes it never holds a raw newline). It returns the tag and the
// joined updates; ok is false for any other message (status, saved,
// presence...), which is published as it is.
func Updates(msg []byte) (origin, updates []byte, ok bool) {
	if len(msg) == 0 || msg[0] != '@' {
		return nil, nil, false
	}
	nl := bytes.IndexByte(msg, '\n')
	if nl < 0 {
		return nil, nil, false
	}
	return msg[1:nl], msg[nl+1:], true
}
