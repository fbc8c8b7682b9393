package shim

import (
	"slices"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	cruntime "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/errdefs"

	"github.com/boxrt/containerd-shim-box-v1/runtime/cgroup"
)

// fakeOOMSource is an oomSource whose notifications the test sends. Every Wait call is
// announced on waiting, so a test knows the previous batch was handled.
type fakeOOMSource struct {
	notify  chan []uint64
	waiting chan struct{}
	closed  chan struct{}

	mu   sync.Mutex
	keys map[uint64]cgroup.Cgroup // guarded by mu
}

func newFakeOOMSource() *fakeOOMSource {
	return &fakeOOMSource{
		notify: make(chan []uint64), waiting: make(chan struct{}, 16), closed: make(chan struct{}),
		keys: map[uint64]cgroup.Cgroup{},
	}
}

func (f *fakeOOMSource) Add(cg cgroup.Cgroup, key uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[key] = cg
	return nil
}

func (f *fakeOOMSource) Remove(key uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.keys, key)
}

func (f *fakeOOMSource) Wait() ([]uint64, error) {
	f.waiting <- struct{}{}
	select {
	case k := <-f.notify:
		return k, nil
	case <-f.closed:
		return nil, cgroup.ErrOOMEventsClosed
	}
}

func (f *fakeOOMSource) Close() error { close(f.closed); return nil }

func (f *fakeOOMSource) watched() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.keys)
}

// keyOf returns the key cg was added under.
func (f *fakeOOMSource) keyOf(t *testing.T, cg cgroup.Cgroup) uint64 {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, c := range f.keys {
		if c == cg {
			return k
		}
	}
	t.Fatal("cgroup is not watched")
	return 0
}

// send delivers one notification and returns once the watcher has handled it.
func (f *fakeOOMSource) send(t *testing.T, keys ...uint64) {
	t.Helper()
	<-f.waiting // the watcher is in Wait
	f.notify <- keys
	select {
	case <-f.waiting: // back in Wait: the batch is handled
	case <-time.After(10 * time.Second):
		t.Fatal("watcher did not handle the notification")
	}
	f.waiting <- struct{}{} // keep the announcement for the next send
}

// fakeCounters are oom_kill counters by cgroup.
type fakeCounters struct {
	mu sync.Mutex
	n  map[cgroup.Cgroup]uint64 // guarded by mu
}

func (f *fakeCounters) set(cg cgroup.Cgroup, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n[cg] = n
}

func (f *fakeCounters) kills(cg cgroup.Cgroup) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.n[cg]
	if !ok {
		return 0, errdefs.ErrNotFound
	}
	return n, nil
}

// oomFixture is a watcher over a fake source and counters, publishing to a recorder.
type oomFixture struct {
	w   *oomWatcher
	src *fakeOOMSource
	cnt *fakeCounters
	q   *eventQueue
	rec *evRecorder
}

func newOOMFixture(t *testing.T) *oomFixture {
	t.Helper()
	rec := newEvRecorder()
	q := newEventQueue(rec)
	src := newFakeOOMSource()
	cnt := &fakeCounters{n: map[cgroup.Cgroup]uint64{}}
	w := startOOMWatcher(q, src, cnt.kills)
	t.Cleanup(func() { w.close(); q.close() })
	return &oomFixture{w: w, src: src, cnt: cnt, q: q, rec: rec}
}

// addContainer adds a watched container whose counter starts at n.
func (f *oomFixture) addContainer(t *testing.T, id string, n uint64) (*container, uint64) {
	t.Helper()
	c := newResContainer(id, Running, &fakeCg{})
	f.cnt.set(c.rt.Cgroup, n)
	if err := f.w.add(c); err != nil {
		t.Fatal(err)
	}
	return c, f.src.keyOf(t, c.rt.Cgroup)
}

// TestOOMNotificationPublishesOncePerKill checks that a notification publishes TaskOOM only
// when the counter rose, once per rise, and that kills counted before add are not reported.
func TestOOMNotificationPublishesOncePerKill(t *testing.T) {
	f := newOOMFixture(t)
	c, key := f.addContainer(t, "c1", 3) // three kills before add: not this container's

	f.src.send(t, key)
	if got := f.rec.drain(t, f.q); len(got) != 0 {
		t.Fatalf("events %v for an unchanged counter, want none", got)
	}
	f.cnt.set(c.rt.Cgroup, 4)
	f.src.send(t, key)
	f.src.send(t, key) // same kill, notified again
	p := f.rec.next(t)
	if oom, ok := p.e.(*eventstypes.TaskOOM); p.topic != cruntime.TaskOOMEventTopic || !ok || oom.ContainerID != "c1" || p.ns != "test" {
		t.Fatalf("got %s %+v in %q, want TaskOOM of c1 in test", p.topic, p.e, p.ns)
	}
	if got := f.rec.drain(t, f.q); len(got) != 0 {
		t.Fatalf("events %v after the first TaskOOM, want none", got)
	}
}

// TestOOMRecheckAfterEarlyNotification checks that a notification that arrives before the
// kill is counted (cgroup v1 notifies first) still publishes TaskOOM once the counter rises.
func TestOOMRecheckAfterEarlyNotification(t *testing.T) {
	saved := oomRecheck
	oomRecheck = []time.Duration{time.Millisecond, 50 * time.Millisecond, time.Hour}
	t.Cleanup(func() { oomRecheck = saved })
	f := newOOMFixture(t)
	c, key := f.addContainer(t, "c1", 0)

	f.src.send(t, key) // counter still 0
	f.cnt.set(c.rt.Cgroup, 1)
	if p := f.rec.next(t); p.topic != cruntime.TaskOOMEventTopic {
		t.Fatalf("got %s, want TaskOOM from a recheck", p.topic)
	}
}

// TestOOMBeforeExitOrder checks that beforeExit publishes a kill no notification reported
// yet before returning, so it precedes the TaskExit queued afterwards, and that nothing is
// published for the container after it (negative control: without beforeExit, the kill is
// not published at all when no notification comes).
func TestOOMBeforeExitOrder(t *testing.T) {
	f := newOOMFixture(t)
	c, key := f.addContainer(t, "c1", 0)
	other, _ := f.addContainer(t, "c2", 0)

	f.cnt.set(c.rt.Cgroup, 1)
	f.cnt.set(other.rt.Cgroup, 1)
	f.w.beforeExit(c)
	f.q.send("test", cruntime.TaskExitEventTopic, &eventstypes.TaskExit{ContainerID: "c1"})
	want := []string{cruntime.TaskOOMEventTopic, cruntime.TaskExitEventTopic}
	if got := f.rec.drain(t, f.q); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}

	// After the exit: neither a late notification nor a second beforeExit publishes.
	f.cnt.set(c.rt.Cgroup, 2)
	f.src.send(t, key)
	f.w.beforeExit(c)
	f.w.remove(c)
	if got := f.rec.drain(t, f.q); len(got) != 0 {
		t.Fatalf("events %v after exit, want none", got)
	}
	// c2's kill, with no notification and no beforeExit, was not published: the kill above
	// was beforeExit's doing.
	if f.src.watched() != 1 {
		t.Fatalf("%d cgroups watched, want only c2's", f.src.watched())
	}
}

// TestOOMNotifiedThenExit checks that a kill published from a notification is not published
// again by beforeExit.
func TestOOMNotifiedThenExit(t *testing.T) {
	f := newOOMFixture(t)
	c, key := f.addContainer(t, "c1", 0)
	f.cnt.set(c.rt.Cgroup, 1)
	f.src.send(t, key)
	f.w.beforeExit(c)
	if got := f.rec.drain(t, f.q); !slices.Equal(got, []string{cruntime.TaskOOMEventTopic}) {
		t.Fatalf("events %v, want one TaskOOM", got)
	}
}

// TestOOMRemoveAndClose checks that remove unregisters the cgroup, that close stops the
// goroutine and closes the source, and that nothing is published or added afterwards.
func TestOOMRemoveAndClose(t *testing.T) {
	f := newOOMFixture(t)
	c, _ := f.addContainer(t, "c1", 0)
	d, _ := f.addContainer(t, "c2", 0)
	f.w.remove(c)
	f.w.remove(c) // idempotent
	if n := f.src.watched(); n != 1 {
		t.Fatalf("%d cgroups watched after remove, want 1", n)
	}
	f.w.close()
	select {
	case <-f.w.done:
	default:
		t.Fatal("close returned before the goroutine ended")
	}
	f.cnt.set(d.rt.Cgroup, 1)
	f.w.beforeExit(d)
	f.w.close() // idempotent
	if got := f.rec.drain(t, f.q); len(got) != 0 {
		t.Fatalf("events %v after close, want none", got)
	}
	if err := f.w.add(newResContainer("c3", Running, d.rt.Cgroup)); err == nil {
		t.Fatal("add after close succeeded")
	}
}
