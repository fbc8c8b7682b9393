package shim

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/runtime"
	"github.com/boxrt/containerd-shim-box-v1/runtime/cgroup"
)

// fakeCg is a cgroup.Cgroup that records the calls the task service makes and fails them
// with the configured errors.
type fakeCg struct {
	mu        sync.Mutex
	calls     []string                // guarded by mu
	updates   []*specs.LinuxResources // guarded by mu
	freezeErr error                   // guarded by mu
	updateErr error                   // guarded by mu
	stats     any                     // guarded by mu
}

var _ cgroup.Cgroup = (*fakeCg)(nil)

func (f *fakeCg) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeCg) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeCg) Path() string                  { return "/fake" }
func (f *fakeCg) CloneFD() (int, bool, error)   { return -1, false, nil }
func (f *fakeCg) Add(pid int) error             { f.record("add"); return nil }
func (f *fakeCg) Pids() ([]int, error)          { return nil, nil }
func (f *fakeCg) Kill(sig syscall.Signal) error { f.record("kill"); return nil }
func (f *fakeCg) Delete() error                 { f.record("delete"); return nil }

func (f *fakeCg) Freeze() error {
	f.record("freeze")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.freezeErr
}

func (f *fakeCg) Thaw() error { f.record("thaw"); return nil }

func (f *fakeCg) Update(r *specs.LinuxResources) error {
	f.record("update")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, r)
	return f.updateErr
}

func (f *fakeCg) Stats() (any, error) {
	f.record("stats")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats, nil
}

// published is one event a evRecorder received.
type published struct {
	ns, topic string
	e         events.Event
}

// evRecorder is a Publisher that hands every event to a channel, in order.
type evRecorder struct{ ch chan published }

func newEvRecorder() *evRecorder { return &evRecorder{ch: make(chan published, 64)} }

func (r *evRecorder) Publish(ctx context.Context, topic string, e events.Event) error {
	ns, _ := namespaces.Namespace(ctx)
	r.ch <- published{ns: ns, topic: topic, e: e}
	return nil
}

// next returns the next event, failing the test after a timeout.
func (r *evRecorder) next(t *testing.T) published {
	t.Helper()
	select {
	case p := <-r.ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no event published within 10s")
		return published{}
	}
}

// barrierTopic marks the end of what a test expects: everything queued before it has been
// published once it arrives.
const barrierTopic = "/test/barrier"

// drain queues a barrier and returns the topics published before it.
func (r *evRecorder) drain(t *testing.T, q *eventQueue) []string {
	t.Helper()
	q.send("test", barrierTopic, nil)
	var topics []string
	for {
		p := r.next(t)
		if p.topic == barrierTopic {
			return topics
		}
		topics = append(topics, p.topic)
	}
}

// newResService returns a service without reaper that serves the given containers and
// publishes to a evRecorder.
func newResService(t *testing.T, cs ...*container) (*service, *evRecorder) {
	t.Helper()
	rec := newEvRecorder()
	q := newEventQueue(rec)
	t.Cleanup(q.close)
	s := newService(nil, q, nil, func() {})
	for _, c := range cs {
		s.containers[c.id] = c
	}
	return s, rec
}

// newResContainer is a container in status st whose cgroup is cg.
func newResContainer(id string, st Status, cg cgroup.Cgroup) *container {
	return &container{
		id: id, namespace: "test", status: st, exited: make(chan struct{}),
		rt: &runtime.Container{ID: id, Cgroup: cg},
	}
}
