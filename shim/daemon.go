package shim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	cshim "github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/fifo"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/shim/launch"
)

// serve is the daemon: it serves the task API on the socket start handed it
// (fd 3) until Shutdown.
//
// start runs it with the bundle as working directory, where containerd
// created the "log" fifo the daemon logs to.
func serve(ctx context.Context, f launch.Flags) error {
	ctx = namespaces.WithNamespace(ctx, f.Namespace)
	if err := setupLogger(ctx, f.Debug); err != nil {
		return err
	}
	tuneGC()
	// Orphaned container processes are reparented to the daemon, which
	// reaps them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become subreaper: %w", err)
	}
	// A write to a closed log fifo must fail, not end the daemon. (Ignore
	// costs no thread; Notify would: see reaper. SIGTERM and SIGINT keep
	// their default action and end the daemon like SIGKILL does, after
	// which containerd's `delete` cleans up.)
	signal.Ignore(unix.SIGPIPE)

	l, err := listener(f.Socket)
	if err != nil {
		return err
	}
	pub, err := cshim.NewPublisher(os.Getenv("TTRPC_ADDRESS"))
	if err != nil {
		return fmt.Errorf("connect event publisher: %w", err)
	}
	defer pub.Close()
	events := newEventQueue(pub)
	defer events.close()

	server, err := ttrpc.NewServer(ttrpc.WithServerHandshaker(ttrpc.UnixSocketRequireSameUser()))
	if err != nil {
		return err
	}
	var once sync.Once
	done := make(chan struct{})
	stop := func() { once.Do(func() { close(done) }) }

	oom, err := newOOMWatcher(events)
	if err != nil {
		return err
	}
	defer oom.close()
	rp := newReaper()
	svc := newService(rp, events, oom, stop)
	orphan := watchContainerd(ctx, os.Getenv(launch.ContainerdEnv), os.Getenv("TTRPC_ADDRESS"))
	taskAPI.RegisterTTRPCTaskService(server, svc)

	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(ctx, l) }()
	log.G(ctx).WithField("id", f.ID).Debug("serving task API")

	for {
		select {
		case err := <-serveErr:
			if err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
				return fmt.Errorf("serve task API: %w", err)
			}
			return nil
		case <-orphan:
			orphan = nil
			svc.orphaned()
		case <-done:
			return shutdownServer(ctx, server, l)
		}
	}
}

func shutdownServer(ctx context.Context, server *ttrpc.Server, l net.Listener) error {
	// Answer the Shutdown RPC in flight before the socket goes away.
	err := server.Shutdown(ctx)
	if ul, ok := l.(*net.UnixListener); ok {
		if a := ul.Addr().String(); a != "" {
			_ = os.Remove(a)
		}
	}
	return err
}

// The daemon's memory. Its live heap is small (~1.2 MiB after the API
// packages' init), and its first GC cycle costs ~1 MiB of memory it keeps
// (measured: an idle daemon after its container's create has 2.5 MiB
// Pss_Anon if no cycle ran, 3.5 MiB at GOGC 25, which collects from the
// start). A daemon serving one container therefore keeps Go's GOGC of 100,
// whose first cycle comes at a 4 MiB heap, and so usually never collects;
// a soft memory limit sized by the containers it serves bounds it when it
// gets busy (4.7 MiB after 300 Stats calls and 40 execs, against 5.0 at
// GOGC 25 and 7.1 at GOGC 100 without a limit). A daemon serving a group
// collects at GOGC 25 from its second container on, which keeps its heap
// near its live data: 21 containers cost the same 17.9 MiB PSS as at GOGC
// 25 throughout. There is no periodic timer: an idle daemon does no work at
// all. GOGC and GOMEMLIMIT in the environment win.
const (
	memoryBase         = 8 << 20
	memoryPerContainer = 1 << 20
	groupGCPercent     = 25
)

// tuneGC sets the memory limit of a daemon that serves no container yet.
func tuneGC() { sizeMemory(0) }

// sizeMemory sets the GC policy for a daemon serving n containers.
func sizeMemory(n int) {
	if n >= 2 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(groupGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(memoryBase + int64(n)*memoryPerContainer)
}

// listener is the socket start handed over as fd 3, or path when given.
func listener(path string) (net.Listener, error) {
	if path != "" {
		return cshim.NewSocket(path)
	}
	f := os.NewFile(3, "socket")
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("socket on fd 3: %w", err)
	}
	return l, nil
}

// setupLogger sends logs to the "log" fifo containerd made in the bundle.
func setupLogger(ctx context.Context, debug bool) error {
	if debug {
		_ = log.SetLevel("debug")
	}
	f, err := fifo.OpenFifoDup2(ctx, "log", unix.O_WRONLY, 0o700, int(os.Stderr.Fd()))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // not started by containerd (tests): keep stderr
		}
		return fmt.Errorf("open shim log: %w", err)
	}
	_ = f
	return nil
}
