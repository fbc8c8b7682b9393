// Command nullshim (installed as containerd-shim-null-v1, runtime io.containerd.null.v1) is the
// benchmark's containerd floor: a shim that speaks containerd's task API and does no work. Its
// tasks are bookkeeping only (no namespace, cgroup, mount or process); a process whose args
// are exactly "true" or "/bin/true" exits with status 0 as soon as it is started, any other
// runs until it is killed. Every task of a containerd is served by one daemon started by the
// benchmark rig, so no Go process starts per container; "start" and "delete" are answered by a
// C constructor before the Go runtime runs (action.c).
//
// What containerd itself does for a task (bundle, snapshot mounts, the two shim binary
// executions it always makes, its ttrpc calls, event handling) is therefore the whole cost of
// a lifecycle through this shim: a lower bound for any shim on this containerd, which the
// benchmark measures interleaved with box and runc (docs/benchmarks.md).
//
// It is a measuring instrument and never a runtime: nothing in it isolates anything.
//
//	containerd-shim-null-v1 serve -socket <path> -ttrpc-address <containerd ttrpc socket>
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/ttrpc"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "serve" {
		fmt.Fprintln(os.Stderr, "usage: containerd-shim-null-v1 serve -socket <path> -ttrpc-address <path>")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	socket := fs.String("socket", "", "unix socket to serve the task API on")
	events := fs.String("ttrpc-address", "", "containerd's ttrpc socket, for events")
	fs.Parse(os.Args[2:])
	if *socket == "" || *events == "" {
		fmt.Fprintln(os.Stderr, "null shim: -socket and -ttrpc-address are required")
		os.Exit(2)
	}
	if err := serve(*socket, *events); err != nil {
		fmt.Fprintln(os.Stderr, "null shim:", err)
		os.Exit(1)
	}
}

func serve(socket, eventsAddress string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	pub, err := newPublisher(eventsAddress)
	if err != nil {
		return err
	}
	defer pub.close()
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	defer l.Close()
	srv, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	taskv3.RegisterTTRPCTaskService(srv, newService(pub))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, l) }()
	select {
	case <-ctx.Done():
		return srv.Close()
	case err := <-errc:
		return err
	}
}
