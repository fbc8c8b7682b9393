package runtime

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime/console"
	"github.com/boxrt/containerd-shim-box-v1/runtime/nsenter"
	"github.com/boxrt/containerd-shim-box-v1/runtime/process"
)

// ExecMain is the container-side exec stage ("containerd-shim-box-v1
// exec"). The nsenter constructor has already joined the container's
// namespaces (the daemon forked it into the pid namespace and the cgroup);
// it reads the process spec, applies it, reports ready, and on "start"
// execs the process. It never returns.
//
// Preconditions:
//   - The calling goroutine is the main goroutine and holds
//     runtime.LockOSThread, taken in an init function.
//   - fd 3 is the stage's end of the sync socketpair (see sync.go).
//   - The binary links runtime/nsenter (a blank import).
func ExecMain() {
	conn := &syncConn{f: os.NewFile(syncFD, "sync")}
	if !nsenter.Ran() || os.Getenv(nsenterEnv) != "" {
		// Without the constructor this process would be in the daemon's
		// mount namespace; refuse rather than exec a host program.
		_ = conn.send(errorMessage(errors.New("exec stage: namespaces not joined: the binary lacks the runtime/nsenter constructor (built without cgo?)")))
		os.Exit(1)
	}
	// The constructor already did this (unless a test asked it not to);
	// done again so the Go side never depends on it.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	if err := runExec(conn); err != nil {
		_ = conn.send(errorMessage(err))
		os.Exit(1)
	}
	os.Exit(1)
}

func runExec(conn *syncConn) error {
	m, err := conn.recv()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if m.Type != msgExecConfig || m.Process == nil {
		return fmt.Errorf("expected exec-config, got %q", m.Type)
	}
	plan, err := oci.NewProcessPlan(m.Process)
	if err != nil {
		return err
	}
	filter, err := m.Filter.program()
	if err != nil {
		return err
	}
	if plan.Personality, err = oci.PlanPersonality(m.Personality); err != nil {
		return err
	}
	if plan.MemoryPolicy, err = oci.PlanMemoryPolicy(m.MemoryPolicy); err != nil {
		return err
	}
	master := -1
	if plan.Terminal {
		f, err := console.Setup(m.Process.ConsoleSize)
		if err != nil {
			return fmt.Errorf("set up terminal: %w", err)
		}
		defer f.Close()
		master = int(f.Fd())
	}
	ex, err := process.PrepareNotify(plan, filter, listenerSender(conn))
	if err != nil {
		return err
	}
	if err := conn.sendFD(message{Type: msgReady, Console: master >= 0}, master); err != nil {
		return fmt.Errorf("report ready: %w", err)
	}
	m, err = conn.recv()
	if err != nil {
		if errors.Is(err, errEOF) {
			os.Exit(0) // the daemon gave up on this exec
		}
		return fmt.Errorf("wait for start: %w", err)
	}
	if m.Type != msgStart {
		return fmt.Errorf("expected start, got %q", m.Type)
	}
	return ex.Run()
}
