package shim

import (
	"errors"
	"fmt"
	"sync"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	cruntime "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/log"

	"github.com/boxrt/containerd-shim-box-v1/runtime/cgroup"
)

// oomSource tells which watched cgroups may have had an OOM kill. *cgroup.OOMEvents
// implements it; tests use a fake.
type oomSource interface {
	Add(cg cgroup.Cgroup, key uint64) error
	Remove(key uint64)
	// Wait blocks until some keys may have changed; it fails once Close was called.
	Wait() ([]uint64, error)
	Close() error
}

// oomRecheck are the delays after a notification at which an unchanged counter is read again:
// on cgroup v1 the kernel notifies before the OOM killer has chosen and counted its victim.
var oomRecheck = []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond, time.Second}

// oomWatcher publishes TaskOOM for containers whose processes the kernel OOM-kills, always
// before the TaskExit of an OOM-killed init.
//
// The kernel's per-cgroup oom_kill counter (cgroup.OOMKills) is the source of truth: a TaskOOM
// is published when it rose above the value last seen, so a kill is never published twice and
// a notification without a kill publishes nothing. Notifications come from one goroutine
// waiting on a cgroup.OOMEvents for every container of the daemon; beforeExit reads the
// counter itself, so the order against TaskExit does not depend on how fast they arrive.
//
// Each container's counter is checked and its TaskOOM queued under that container's entry
// lock, so the goroutine and beforeExit never both publish one kill, and a TaskOOM queued by
// the goroutine is in the event queue before beforeExit returns.
//
// Lock order: oomWatcher.mu before oomEntry.mu. Methods are safe for concurrent use.
type oomWatcher struct {
	events *eventQueue
	src    oomSource
	kills  func(cgroup.Cgroup) (uint64, error)
	done   chan struct{} // closed when the goroutine has returned

	mu      sync.Mutex
	entries map[uint64]*oomEntry     // guarded by mu; by key
	keys    map[*container]uint64    // guarded by mu
	timers  map[*time.Timer]struct{} // guarded by mu; pending rechecks
	next    uint64                   // guarded by mu; the next key
	closed  bool                     // guarded by mu
}

// oomEntry is one watched container.
type oomEntry struct {
	c *container

	mu sync.Mutex
	// seen is the counter value already accounted for: read at add, raised at each TaskOOM.
	seen uint64 // guarded by mu
	// done is set once init's exit was handled, or the container removed: nothing more is
	// published for it, so no TaskOOM follows its TaskExit.
	done bool // guarded by mu
}

func newOOMWatcher(ev *eventQueue) (*oomWatcher, error) {
	src, err := cgroup.NewOOMEvents()
	if err != nil {
		return nil, fmt.Errorf("watch OOM kills: %w", err)
	}
	return startOOMWatcher(ev, src, cgroup.OOMKills), nil
}

// startOOMWatcher starts the goroutine that waits on src and checks counters with kills.
func startOOMWatcher(ev *eventQueue, src oomSource, kills func(cgroup.Cgroup) (uint64, error)) *oomWatcher {
	w := &oomWatcher{
		events: ev, src: src, kills: kills, done: make(chan struct{}),
		entries: make(map[uint64]*oomEntry), keys: make(map[*container]uint64),
		timers: make(map[*time.Timer]struct{}), next: 1,
	}
	go w.run()
	return w
}

// run checks every container the source reports until the source is closed.
func (w *oomWatcher) run() {
	defer close(w.done)
	for {
		keys, err := w.src.Wait()
		if err != nil {
			if !errors.Is(err, cgroup.ErrOOMEventsClosed) {
				log.L.WithError(err).Error("wait for OOM events; OOM kills are reported at exit only")
			}
			return
		}
		for _, k := range keys {
			w.mu.Lock()
			e := w.entries[k]
			w.mu.Unlock()
			if e != nil && !w.check(e) {
				w.scheduleRechecks(e)
			}
		}
	}
}

// scheduleRechecks reads e's counter again after each oomRecheck delay.
func (w *oomWatcher) scheduleRechecks(e *oomEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	for _, d := range oomRecheck {
		var t *time.Timer
		t = time.AfterFunc(d, func() {
			w.mu.Lock()
			delete(w.timers, t)
			w.mu.Unlock()
			w.check(e)
		})
		w.timers[t] = struct{}{}
	}
}

// check publishes TaskOOM if e's counter rose since it was last seen, and reports whether it
// did.
func (w *oomWatcher) check(e *oomEntry) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return false
	}
	n, err := w.kills(e.c.rt.Cgroup)
	if err != nil {
		// The cgroup is gone (it was deleted) or unreadable: nothing to report.
		log.L.WithError(err).WithField("id", e.c.id).Debug("read OOM kill counter")
		return false
	}
	if n <= e.seen {
		return false
	}
	e.seen = n
	w.events.send(e.c.namespace, cruntime.TaskOOMEventTopic, &eventstypes.TaskOOM{ContainerID: e.c.id})
	return true
}

// add starts watching c's cgroup. Called once c is created, before its exit can be
// published. Kills counted before add are not reported. A container added twice keeps its
// first registration.
func (w *oomWatcher) add(c *container) error {
	seen, err := w.kills(c.rt.Cgroup)
	if err != nil {
		return fmt.Errorf("watch OOM kills of %s: %w", c.id, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("watch OOM kills of %s: %w", c.id, cgroup.ErrOOMEventsClosed)
	}
	if _, ok := w.keys[c]; ok {
		return nil
	}
	key := w.next
	w.next++
	// Registered first, so a notification arriving during Add finds it.
	w.entries[key] = &oomEntry{c: c, seen: seen}
	w.keys[c] = key
	if err := w.src.Add(c.rt.Cgroup, key); err != nil {
		delete(w.entries, key)
		delete(w.keys, c)
		return fmt.Errorf("watch OOM kills of %s: %w", c.id, err)
	}
	return nil
}

// beforeExit publishes TaskOOM for c if an OOM kill happened in its cgroup that was not
// published yet, and stops watching c. Called on init's exit, before TaskExit is queued, so
// the order holds even for an OOM in the first milliseconds: the kernel counts a kill before
// it sends SIGKILL, so the counter read here includes the kill of init.
func (w *oomWatcher) beforeExit(c *container) {
	e := w.detach(c)
	if e == nil {
		return
	}
	w.check(e)
	e.mu.Lock()
	e.done = true
	e.mu.Unlock()
}

// remove stops watching c. Called at Delete; idempotent.
func (w *oomWatcher) remove(c *container) {
	if e := w.detach(c); e != nil {
		e.mu.Lock()
		e.done = true
		e.mu.Unlock()
	}
}

// detach unregisters c from the source and returns its entry, or nil if c is not watched.
func (w *oomWatcher) detach(c *container) *oomEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	key, ok := w.keys[c]
	if !ok {
		return nil
	}
	e := w.entries[key]
	delete(w.keys, c)
	delete(w.entries, key)
	w.src.Remove(key)
	return e
}

// close stops the goroutine and pending rechecks and releases every fd. Nothing is published
// once close returns; later calls of the other methods do nothing (add fails).
func (w *oomWatcher) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	for t := range w.timers {
		t.Stop()
	}
	entries := w.entries
	w.entries, w.keys = map[uint64]*oomEntry{}, map[*container]uint64{}
	w.mu.Unlock()

	// A recheck already running finishes its check before done is set here.
	for _, e := range entries {
		e.mu.Lock()
		e.done = true
		e.mu.Unlock()
	}
	if err := w.src.Close(); err != nil {
		log.L.WithError(err).Warn("close OOM watcher")
	}
	<-w.done
}
