package session

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/collab-dev/collab/internal/protocol"
)

// renameQuiet is how long a rename waits for the next keystroke before it
// is announced: a name typed letter by letter goes out a few times, not once
// per letter, and still within a fraction of a second.
const renameQuiet = 150 * time.Millisecond

// feed is the workspace's campaign list, live: the sessions that watch it
// (`campaigns.watch`) get a `campaign` push when a campaign of their
// workspace is created, renamed or changes status, on whichever node. A
// node subscribes to a workspace's channel while one of its sessions
// watches it.
type feed struct {
	h *Hub

	subMu sync.Mutex // serializes subscribing and unsubscribing

	mu       sync.Mutex // guards the maps
	watchers map[string]map[*Session]struct{}
	renames  map[string]pendingRename // campaign id → its newest rename not yet announced

	kick chan struct{}
	done chan struct{}
}

type pendingRename struct {
	ws  string
	msg protocol.CampaignListed
}

func newFeed(h *Hub) *feed {
	return &feed{h: h, watchers: map[string]map[*Session]struct{}{}, renames: map[string]pendingRename{},
		kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// watch adds s to its workspace's watchers, subscribing the node to the
// workspace's channel when s is its first watcher here.
func (f *feed) watch(ctx context.Context, s *Session) error {
	ws := s.claims.Workspace
	f.subMu.Lock()
	defer f.subMu.Unlock()
	f.mu.Lock()
	first := len(f.watchers[ws]) == 0
	f.mu.Unlock()
	if first {
		if err := f.h.bus.Subscribe(ctx, f.h.drafts.FeedChannel(ws), func(msg []byte) { f.deliver(ws, msg) }); err != nil {
			return err
		}
	}
	f.mu.Lock()
	if f.watchers[ws] == nil {
		f.watchers[ws] = map[*Session]struct{}{}
	}
	f.watchers[ws][s] = struct{}{}
	f.mu.Unlock()
	return nil
}

// unwatch removes s; the last watcher of a workspace on this node
// unsubscribes it.
func (f *feed) unwatch(s *Session) {
	ws := s.claims.Workspace
	f.subMu.Lock()
	defer f.subMu.Unlock()
	f.mu.Lock()
	set, ok := f.watchers[ws]
	if ok {
		delete(set, s)
	}
	last := ok && len(set) == 0
	if last {
		delete(f.watchers, ws)
	}
	f.mu.Unlock()
	if last {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.h.bus.Unsubscribe(ctx, f.h.drafts.FeedChannel(ws))
	}
}

// deliver runs on the bus goroutine: it only queues, never waits.
func (f *feed) deliver(ws string, msg []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.watchers[ws] {
		s.Send(msg)
	}
}

// noteRenames is called with the batches a room has just committed: a
// change of /name is announced once typing pauses.
func (f *feed) noteRenames(ws, id string, accepted []committed) {
	for _, c := range accepted {
		u := c.u
		if u == nil {
			continue
		}
		for _, op := range u.Ops {
			if op.Path != "/name" || (op.Op != "add" && op.Op != "replace") {
				continue
			}
			var name string
			if json.Unmarshal(op.Value, &name) != nil {
				continue
			}
			f.mu.Lock()
			if p, ok := f.renames[id]; !ok || p.msg.Rev < u.Rev {
				f.renames[id] = pendingRename{ws: ws, msg: protocol.CampaignListed{Workspace: ws, Change: protocol.ListRenamed,
					ID: id, Name: name, Rev: u.Rev, By: u.By.User, At: time.Now().UnixMilli()}}
			}
			f.mu.Unlock()
			select {
			case f.kick <- struct{}{}:
			default:
			}
		}
	}
}

// run announces renames until the hub stops (then once more, so that a
// rename typed just before shutdown is not left out).
func (f *feed) run() {
	defer close(f.done)
	for {
		select {
		case <-f.h.ctx.Done():
			f.announceRenames()
			return
		case <-f.kick:
		}
		select {
		case <-time.After(renameQuiet):
		case <-f.h.ctx.Done():
		}
		f.announceRenames()
	}
}

func (f *feed) announceRenames() {
	f.mu.Lock()
	list := make([]pendingRename, 0, len(f.renames))
	for id, p := range f.renames {
		list = append(list, p)
		delete(f.renames, id)
	}
	f.mu.Unlock()
	for _, p := range list {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := f.h.drafts.PublishFeed(ctx, p.ws, p.msg.ID, protocol.Encode(nil, p.msg)); err != nil {
			f.h.log.Warn("announce a rename", "campaign", p.msg.ID, "err", err)
		}
		cancel()
	}
}

// AnnounceCampaign tells every node's watchers of the workspace about a
// change to its campaign list (the API calls it on a creation and a status
// change; renames are announced by the rooms that commit them).
func (h *Hub) AnnounceCampaign(ctx context.Context, ev protocol.CampaignListed) error {
	if ev.At == 0 {
		ev.At = time.Now().UnixMilli()
	}
	return h.drafts.PublishFeed(ctx, ev.Workspace, ev.ID, protocol.Encode(nil, ev))
}

// campaignsWatch starts the session's live campaign list.
func (s *Session) campaignsWatch(req *protocol.Request) error {
	if err := s.hub.feed.watch(s.ctx, s); err != nil {
		return err
	}
	s.watching = true
	s.Reply(req, protocol.OK{})
	return nil
}

// campaignsUnwatch stops it.
func (s *Session) campaignsUnwatch(req *protocol.Request) error {
	if s.watching {
		s.hub.feed.unwatch(s)
		s.watching = false
	}
	s.Reply(req, protocol.OK{})
	return nil
}
