package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	ttrpcevents "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// publisher forwards task events to containerd in the order they happened, off the RPC path
// (as the shims do: an event is not part of the request that caused it).
type publisher struct {
	client *ttrpc.Client
	events ttrpcevents.TTRPCEventsService

	mu     sync.Mutex
	queue  []*ttrpcevents.ForwardRequest
	wake   chan struct{}
	closed chan struct{}
	done   chan struct{}
}

func newPublisher(address string) (*publisher, error) {
	conn, err := net.Dial("unix", address)
	if err != nil {
		return nil, fmt.Errorf("dial containerd's ttrpc socket: %w", err)
	}
	c := ttrpc.NewClient(conn)
	p := &publisher{client: c, events: ttrpcevents.NewTTRPCEventsClient(c),
		wake: make(chan struct{}, 1), closed: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p, nil
}

func (p *publisher) publish(ctx context.Context, topic string, event any) {
	ns, _ := namespaces.Namespace(ctx)
	a, err := typeurl.MarshalAnyToProto(event)
	if err != nil {
		fmt.Fprintf(os.Stderr, "null shim: event %s: %v\n", topic, err)
		return
	}
	p.mu.Lock()
	p.queue = append(p.queue, &ttrpcevents.ForwardRequest{Envelope: &types.Envelope{
		Timestamp: timestamppb.Now(), Namespace: ns, Topic: topic, Event: a}})
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *publisher) run() {
	defer close(p.done)
	for {
		p.mu.Lock()
		q := p.queue
		p.queue = nil
		p.mu.Unlock()
		for _, r := range q {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, err := p.events.Forward(ctx, r); err != nil {
				fmt.Fprintf(os.Stderr, "null shim: forward %s: %v\n", r.Envelope.Topic, err)
			}
			cancel()
		}
		select {
		case <-p.wake:
		case <-p.closed:
			return
		}
	}
}

func (p *publisher) close() {
	close(p.closed)
	<-p.done
	p.client.Close()
}
