package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime/process"
)

// ProcessConfig describes a process to exec into a running container.
type ProcessConfig struct {
	ID string // exec id, for errors/logs
	// Spec is validated with oci.NewProcessPlan; a bad one fails Exec with
	// errdefs.ErrInvalidArgument naming the field.
	Spec *specs.Process
	// Stdio are the process's stdin, stdout and stderr; nil means /dev/null.
	// Ignored when Spec.Terminal: the process gets a pty (Process.Console).
	Stdio [3]*os.File
	// Monitor collects the process's exit; the same Monitor as Create's.
	Monitor Monitor
}

// Process is an exec'd process. Its methods are safe for concurrent use.
type Process struct {
	Pid int
	// Console is the pty master when Spec.Terminal, else nil. The caller
	// owns it and closes it.
	Console *os.File

	exited <-chan Exit

	mu    sync.Mutex
	pidfd int // guarded by mu; -1 after Close

	// selfJoined: the exec stage joined its v1 cgroup itself (forkExecStage).
	selfJoined bool
}

// Exited receives the process's exit exactly once.
func (p *Process) Exited() <-chan Exit { return p.exited }

// Signal sends sig to the process through its pidfd, so a recycled pid is
// never signalled. A process that has exited (or a closed Process) gives
// errdefs.ErrNotFound.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd < 0 {
		return fmt.Errorf("process %d: %w", p.Pid, errdefs.ErrNotFound)
	}
	if err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("process %d already finished: %w", p.Pid, errdefs.ErrNotFound)
		}
		return fmt.Errorf("signal %d to process %d: %w", sig, p.Pid, err)
	}
	return nil
}

// Close releases the pidfd. It is idempotent; call it once the exit was
// collected. It does not close Console.
func (p *Process) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
}

// Exec starts cfg.Spec inside every namespace and the cgroup of c's init
// process and returns once the process has execve'd, or with why it could
// not: a missing program is errdefs.ErrNotFound, a bad cwd or user
// errdefs.ErrInvalidArgument, an init that has exited
// errdefs.ErrFailedPrecondition. On error no process is left.
//
// The exec stage is forked from a locked OS thread that has joined the
// init's pid namespace (pid_for_children), into the container's cgroup
// (CLONE_INTO_CGROUP on v2; cgroup.procs on v1 before it is told anything);
// the nsenter constructor joins the other namespaces from the init's pidfd
// before the stage's Go runtime starts (runtime/nsenter).
//
// Preconditions: c's init is running (Create returned; not exited).
func (c *Container) Exec(ctx context.Context, cfg ProcessConfig) (_ *Process, retErr error) {
	// Fields the exec leaves unset come from the container's process.
	spec := oci.ExecProcess(cfg.Spec, c.Plan.Spec.Process)
	plan, err := oci.NewProcessPlan(spec)
	if err != nil {
		return nil, err
	}
	if err := process.CheckHost(plan); err != nil {
		return nil, err
	}
	if err := c.checkRunning(); err != nil {
		return nil, err
	}
	exe, err := SealedExe()
	if err != nil {
		return nil, err
	}
	parent, child, err := newSyncPair()
	if err != nil {
		return nil, err
	}
	defer parent.close()

	p, err := c.spawnExec(cfg, plan, exe, child)
	child.Close()
	if err != nil {
		return nil, fmt.Errorf("exec %s: %w", cfg.ID, err)
	}
	killed := false
	defer func() {
		if retErr != nil && !killed {
			p.kill()
		}
	}()
	if !bornInCgroup(c.Cgroup) && !p.selfJoined {
		// cgroup v1: place the child before it is told to do anything.
		if err := c.Cgroup.Add(p.Pid); err != nil {
			return nil, fmt.Errorf("add exec %s (pid %d) to cgroup: %w", cfg.ID, p.Pid, err)
		}
	}
	if err := setFinalAffinity(p.Pid, plan.ExecCPUAffinity); err != nil {
		return nil, fmt.Errorf("exec %s: %w", cfg.ID, err)
	}
	if err := parent.send(message{Type: msgExecConfig, Process: spec, Filter: encodeFilter(c.filter),
		Personality: c.Plan.Spec.Linux.Personality, MemoryPolicy: c.Plan.Spec.Linux.MemoryPolicy}); err != nil {
		return nil, fmt.Errorf("send config to exec %s: %w", cfg.ID, err)
	}
	// With NOTIFY rules the listener comes first (seccompnotify.go).
	err = c.awaitListener(ctx, parent, p.pidfd, p.Pid, specs.StateRunning)
	var console *os.File
	if err == nil {
		console, err = awaitReady(parent, plan.Terminal, "exec "+cfg.ID)
	}
	if errors.Is(err, errEOF) {
		killed = true
		return nil, fmt.Errorf("%w (exit status %d)", err, p.kill().Status)
	}
	if err != nil {
		return nil, err
	}
	p.Console = console
	defer func() {
		if retErr != nil && console != nil {
			console.Close()
			p.Console = nil
		}
	}()
	if err := awaitExecve(parent, msgStart, "exec "+cfg.ID); err != nil {
		return nil, err
	}
	return p, nil
}

// checkRunning fails when the init process has exited: its pidfd is
// readable from the moment it is a zombie.
func (c *Container) checkRunning() error {
	if c.pidfd < 0 {
		return fmt.Errorf("container %s was destroyed: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	fds := []unix.PollFd{{Fd: int32(c.pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	if err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("poll init pidfd: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("container %s: init process %d has exited: %w", c.ID, c.Pid, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// awaitReady reads the stage's answer to its config: ready, with the pty
// master when want is set.
func awaitReady(conn *syncConn, wantConsole bool, who string) (*os.File, error) {
	m, f, err := conn.recvFD()
	switch {
	case errors.Is(err, errEOF):
		return nil, fmt.Errorf("%s: stage exited during setup: %w", who, err)
	case err != nil:
		return nil, fmt.Errorf("read from %s: %w", who, err)
	case m.Type == msgError:
		err = remoteError(m)
	case m.Type != msgReady:
		err = fmt.Errorf("unexpected %q from %s", m.Type, who)
	case wantConsole != (f != nil) || m.Console != (f != nil):
		err = fmt.Errorf("%s: console wanted %t, got %t", who, wantConsole, f != nil)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, err
	}
	return f, nil
}

// awaitExecve sends msg and waits for the EOF that proves execve.
func awaitExecve(conn *syncConn, msg msgType, who string) error {
	if err := conn.send(message{Type: msg}); err != nil {
		return fmt.Errorf("tell %s to start: %w", who, err)
	}
	m, err := conn.recv()
	switch {
	case errors.Is(err, errEOF):
		return nil
	case err != nil:
		return fmt.Errorf("read from %s: %w", who, err)
	case m.Type == msgError:
		return remoteError(m)
	default:
		return fmt.Errorf("unexpected %q from %s", m.Type, who)
	}
}

// kill ends a process whose exec failed and collects its exit. Call it
// once: the exit is delivered only once.
func (p *Process) kill() Exit {
	p.mu.Lock()
	if p.pidfd >= 0 {
		_ = unix.PidfdSendSignal(p.pidfd, unix.SIGKILL, nil, 0)
	}
	p.mu.Unlock()
	e := <-p.exited
	p.Close()
	return e
}
