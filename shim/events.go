package shim

import (
	"context"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"
)

// Publisher sends events to containerd.
type Publisher interface {
	Publish(ctx context.Context, topic string, event events.Event) error
}

type event struct {
	ns    string
	topic string
	e     events.Event
}

// eventQueue forwards events to containerd in the order they were queued,
// so a task's create, start, exit and delete arrive in that order, without
// blocking the RPC or exit path on containerd's answer.
type eventQueue struct {
	ch   chan event
	done chan struct{}
}

func newEventQueue(p Publisher) *eventQueue {
	q := &eventQueue{ch: make(chan event, 256), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		for ev := range q.ch {
			ctx := namespaces.WithNamespace(context.Background(), ev.ns)
			if err := p.Publish(ctx, ev.topic, ev.e); err != nil {
				log.G(ctx).WithError(err).WithField("topic", ev.topic).Error("publish event")
			}
		}
	}()
	return q
}

// send queues an event. It must not be called after close.
func (q *eventQueue) send(ns, topic string, e events.Event) {
	q.ch <- event{ns: ns, topic: topic, e: e}
}

// close flushes queued events and stops.
func (q *eventQueue) close() {
	close(q.ch)
	<-q.done
}
