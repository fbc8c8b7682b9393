package runtime

// OCI hooks (runtime-spec config.md "POSIX-platform Hooks", runtime.md
// "Lifecycle"), and where box runs each kind:
//
//	kind             runs in                      when                                    status     on failure
//	prestart         daemon (runtime namespaces)  Create, after mounts, before pivot_root  creating   Create fails
//	createRuntime    daemon (runtime namespaces)  right after prestart                     creating   Create fails
//	createContainer  init stage (container's      right after createRuntime, path          creating   Create fails
//	                 namespaces, host root)       resolved in the runtime's filesystem
//	startContainer   init stage (container, as    Start, before the process's execve,      created    Start fails, init exits
//	                 its user, after pivot_root)  path resolved in the container
//	poststart        daemon                       Start, after execve                      running    container killed, Start fails
//	poststop         daemon                       Delete (or a failed Create), after the   stopped    logged; the rest still run
//	                                              cgroup is removed, before unmounting
//
// Failures of the first four stop the container and continue the lifecycle
// at "destroy" (runtime.md steps 2-9 "continue the lifecycle at step 12"),
// which runs the poststop hooks. Poststart failing kills the container and
// fails Start, as runtime-spec 1.3.0 says and as runc does.
//
// Every hook gets the container's state (specs.State) as JSON on stdin and
// a pipe as stdout and stderr whose first hookOutputMax bytes end up in the
// error (or the daemon's debug log); nothing else of its caller's
// descriptors (see hookCloexec). Its pid in the state is always the init's
// pid in the daemon's pid namespace ("the ID of the container process, as
// seen by the host"); runc gives in-container hooks the pid inside the
// container's pid namespace instead. A hook without env gets the runtime's
// environment (runc's behaviour), except startContainer hooks, which get the
// container process's environment (runc's de facto behaviour). Hooks run by
// the daemon start in the bundle directory, createContainer hooks in the
// rootfs (runc's choice), startContainer hooks in the process's cwd.
//
// A spec without prestart/createRuntime hooks costs no sync round trip; a
// spec without any hook costs nothing.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime/process"
)

const (
	// hookOutputMax bounds how much of a hook's output is kept.
	hookOutputMax = 4096
	// hookOutputGrace bounds how long a hook's output pipe is read after
	// the hook exited: a child it left behind may hold the pipe.
	hookOutputGrace = 500 * time.Millisecond
)

// hookCloexec marks every descriptor >= 3 close-on-exec before a hook is
// forked, so a hook gets only stdin, stdout and stderr (CVE-2024-21626
// class: no runtime descriptor reaches a program it executes). A test
// replaces it to show what leaks without it.
var hookCloexec = process.MarkCloexecFrom3

// hookRun says how one list of hooks runs.
type hookRun struct {
	// kind names the list in errors: "createRuntime".
	kind string
	// monitor forks each hook and collects its exit.
	monitor Monitor
	// dir is the hooks' working directory; "" keeps the caller's.
	dir string
	// env is the environment of hooks whose spec gives none.
	env []string
}

// run runs hooks in order, each with state as JSON on stdin, and returns
// at the first failure with an error naming the hook. ctx ending kills the
// running hook.
func (r hookRun) run(ctx context.Context, hooks []oci.Hook, state *specs.State) error {
	if len(hooks) == 0 {
		return nil
	}
	b, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("%s hooks: encode state: %w", r.kind, err)
	}
	if err := hookCloexec(); err != nil {
		return fmt.Errorf("%s hooks: %w", r.kind, err)
	}
	for i, h := range hooks {
		if err := r.runOne(ctx, h, b); err != nil {
			return fmt.Errorf("%s hook #%d (%s): %w", r.kind, i, h.Path, err)
		}
	}
	return nil
}

// runOne runs one hook to its end. Its output is part of the error when
// it fails, and dropped otherwise.
func (r hookRun) runOne(ctx context.Context, h oci.Hook, state []byte) error {
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer stdinW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		return err
	}
	defer outR.Close()
	env := h.Env
	if env == nil {
		env = r.env
	}
	pidfd := -1
	attr := &syscall.ProcAttr{
		Dir:   r.dir,
		Env:   env,
		Files: []uintptr{stdinR.Fd(), outW.Fd(), outW.Fd()},
		Sys:   &syscall.SysProcAttr{PidFD: &pidfd},
	}
	pid, exited, err := r.monitor.Fork(func() (int, error) {
		return syscall.ForkExec(h.Path, h.Argv, attr)
	})
	stdinR.Close()
	outW.Close()
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			err = fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
		}
		return fmt.Errorf("start: %w", err)
	}
	kill := func() { _ = unix.Kill(pid, unix.SIGKILL) }
	if pidfd >= 0 {
		defer unix.Close(pidfd)
		// Not the pid: the daemon's reaper may have collected it already.
		kill = func() { _ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0) }
	}

	// The state is written while the hook runs: a hook that does not read
	// it must not block us once the pipe is full.
	go func() {
		_, _ = stdinW.Write(state)
		stdinW.Close() // EOF for the hook; closing twice is harmless
	}()
	output := make(chan string, 1)
	go func() { output <- readCapped(outR, hookOutputMax) }()

	var expired <-chan time.Time
	if h.Timeout > 0 {
		t := time.NewTimer(h.Timeout)
		defer t.Stop()
		expired = t.C
	}
	var e Exit
	var why error
	select {
	case e = <-exited:
	case <-expired:
		kill()
		e = <-exited
		why = fmt.Errorf("ran past its timeout of %s and was killed", h.Timeout)
	case <-ctx.Done():
		kill()
		e = <-exited
		why = fmt.Errorf("killed: %w", ctx.Err())
	}
	// Unblock the state writer, and stop reading output that a child of
	// the hook may keep open.
	stdinW.Close()
	_ = outR.SetReadDeadline(time.Now().Add(hookOutputGrace))
	out := <-output
	if why == nil && e.Status != 0 {
		why = fmt.Errorf("exited with status %d", e.Status)
	}
	if why != nil && out != "" {
		why = fmt.Errorf("%w, output: %q", why, out)
	}
	return why
}

// readCapped reads r to its end (or a read error, such as a deadline) and
// returns the first max bytes, trimmed.
func readCapped(r io.Reader, max int) string {
	buf := make([]byte, 0, 512)
	chunk := make([]byte, 512)
	for {
		n, err := r.Read(chunk)
		if room := max - len(buf); room > 0 {
			buf = append(buf, chunk[:min(n, room)]...)
		}
		if err != nil {
			return strings.TrimSpace(string(buf))
		}
	}
}

// hookState is the state given to a container's hooks. pid 0 leaves it out
// (poststop: there is no container process any more).
func hookState(id, bundle string, status specs.ContainerState, pid int, annotations map[string]string) *specs.State {
	return &specs.State{
		Version:     specs.Version,
		ID:          id,
		Status:      status,
		Pid:         pid,
		Bundle:      bundle,
		Annotations: annotations,
	}
}

// Daemon side.

// serveHooks answers the init stage's "hooks" request during Create: it
// runs the prestart, then the createRuntime hooks in the runtime namespaces
// and lets the stage go on. A failure is returned and the stage is left
// waiting, to be killed by Create's rollback.
//
// Preconditions: the plan has hooks before pivot (Hooks.BeforePivot); the
// config was sent.
func (c *Container) serveHooks(ctx context.Context, conn *syncConn) error {
	m, err := conn.recv()
	switch {
	case err != nil:
		return err
	case m.Type == msgError:
		return remoteError(m)
	case m.Type != msgHooks:
		return fmt.Errorf("unexpected %q from container init, want %q", m.Type, msgHooks)
	}
	h := c.Plan.Hooks
	state := c.hookState(specs.StateCreating, c.Pid)
	if err := c.daemonHooks("prestart").run(ctx, h.Prestart, state); err != nil {
		return err
	}
	if err := c.daemonHooks("createRuntime").run(ctx, h.CreateRuntime, state); err != nil {
		return err
	}
	if err := conn.send(message{Type: msgHooksDone}); err != nil {
		return fmt.Errorf("tell init the hooks ran: %w", err)
	}
	return nil
}

// poststart runs the poststart hooks after the container's process was
// executed. If one fails, the container is killed: "If any poststart hook
// fails, the runtime MUST generate an error, stop the container, and
// continue the lifecycle at step 12."
func (c *Container) poststart() error {
	if len(c.Plan.Hooks.Poststart) == 0 {
		return nil
	}
	ctx := context.Background()
	err := c.daemonHooks("poststart").run(ctx, c.Plan.Hooks.Poststart, c.hookState(specs.StateRunning, c.Pid))
	if err != nil {
		if kerr := c.SignalAll(unix.SIGKILL); kerr != nil {
			err = errors.Join(err, fmt.Errorf("kill the container after its poststart hook failed: %w", kerr))
		}
	}
	return err
}

// Poststop runs the poststop hooks, once: later calls do nothing. "If any
// poststop hook fails, the runtime MUST log a warning, but the remaining
// hooks and lifecycle continue as if the hook had succeeded": every hook
// runs, and the failures are returned joined for the caller to log, never
// to act on. (The runtime package logs nothing itself: the init stage's
// binary links no logging package.)
//
// Preconditions: the container was destroyed (Destroy succeeded).
func (c *Container) Poststop(ctx context.Context) error {
	var err error
	c.poststopOnce.Do(func() {
		err = runPoststop(ctx, c.ID, c.bundle, c.Plan, c.monitor)
	})
	return err
}

// PoststopAfterCrash runs the poststop hooks of a container whose daemon is
// gone, for the shim's delete action (runc's "delete --force" runs them
// too): spec is the bundle's config.json. Failures are returned joined, to
// be reported, never acted on.
func PoststopAfterCrash(ctx context.Context, id, bundle string, spec *specs.Spec) error {
	hooks, err := oci.PlanHooks(spec.Hooks)
	if err != nil || len(hooks.Poststop) == 0 {
		return err
	}
	return runPoststop(ctx, id, bundle, &oci.Plan{Spec: spec, Hooks: hooks}, waitMonitor{})
}

// runPoststop runs every poststop hook of p and returns the failures.
func runPoststop(ctx context.Context, id, bundle string, p *oci.Plan, m Monitor) error {
	r := hookRun{kind: "poststop", monitor: m, dir: bundle, env: os.Environ()}
	if len(p.Hooks.Poststop) == 0 || !claimPoststop(bundle) {
		return nil
	}
	state, err := json.Marshal(hookState(id, bundle, specs.StateStopped, 0, p.Spec.Annotations))
	if err != nil {
		return fmt.Errorf("poststop hooks: encode state: %w", err)
	}
	if err := hookCloexec(); err != nil {
		return fmt.Errorf("poststop hooks: %w", err)
	}
	var errs []error
	for i, h := range p.Hooks.Poststop {
		if err := r.runOne(ctx, h, state); err != nil {
			errs = append(errs, fmt.Errorf("poststop hook #%d (%s) of %s: %w", i, h.Path, id, err))
		}
	}
	return errors.Join(errs...)
}

// poststopMarker is made in the bundle before the poststop hooks run, so
// they run at most once per container: the daemon's Delete and, after the
// daemon exits, containerd's "delete" action both clean up.
const poststopMarker = ".box-poststop-ran"

// claimPoststop reports whether the poststop hooks of the bundle's
// container are still to run, and marks them as run. A bundle that cannot
// hold the marker does not stop them.
func claimPoststop(bundle string) bool {
	if bundle == "" {
		return true
	}
	f, err := os.OpenFile(filepath.Join(bundle, poststopMarker), os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return !errors.Is(err, os.ErrExist)
	}
	f.Close()
	return true
}

func (c *Container) daemonHooks(kind string) hookRun {
	return hookRun{kind: kind, monitor: c.monitor, dir: c.bundle, env: os.Environ()}
}

func (c *Container) hookState(status specs.ContainerState, pid int) *specs.State {
	return hookState(c.ID, c.bundle, status, pid, c.Plan.Spec.Annotations)
}

// hookEnvFor is the environment the daemon sends for the init stage's
// createContainer hooks that have none: the daemon's own. Nil when no such
// hook exists, so a spec without hooks sends nothing more.
func hookEnvFor(p *oci.Plan) []string {
	for _, h := range p.Hooks.CreateContainer {
		if h.Env == nil {
			return os.Environ()
		}
	}
	return nil
}

// Init stage side.

// stageHooks runs the hooks of the init stage.
type stageHooks struct {
	conn *syncConn
	cfg  *stageConfig
	plan *oci.Plan
}

// beforePivot runs once the container's mounts and devices are in place,
// before pivot_root: it asks the daemon to run the prestart and
// createRuntime hooks (only if there are any: no round trip otherwise),
// then runs the createContainer hooks here, in the container's namespaces,
// with the runtime's root still visible ("The createContainer hooks' path
// MUST resolve in the runtime namespace. The createContainer hooks MUST be
// executed in the container namespace.").
//
// Preconditions: the init stage's locked thread, root of the container's
// namespaces with every capability.
func (s stageHooks) beforePivot() error {
	h := s.plan.Hooks
	if h.BeforePivot() {
		if err := s.conn.send(message{Type: msgHooks}); err != nil {
			return fmt.Errorf("ask the runtime to run its hooks: %w", err)
		}
		m, err := s.conn.recv()
		switch {
		case errors.Is(err, errEOF):
			// The daemon failed Create and kills us.
			os.Exit(1)
		case err != nil:
			return fmt.Errorf("wait for the runtime's hooks: %w", err)
		case m.Type != msgHooksDone:
			return fmt.Errorf("expected %q, got %q", msgHooksDone, m.Type)
		}
	}
	r := hookRun{kind: "createContainer", monitor: waitMonitor{}, dir: s.plan.Rootfs, env: s.cfg.HookEnv}
	return r.run(context.Background(), h.CreateContainer, s.state(specs.StateCreating))
}

// startContainer runs the startContainer hooks after Start, right before
// the container's process is executed: in the container, after pivot_root,
// with the process's credentials and cwd ("The startContainer hooks' path
// MUST resolve in the container namespace").
//
// Preconditions: the thread that ran process.Prepare, still locked.
func (s stageHooks) startContainer(ex *process.Exec) error {
	r := hookRun{kind: "startContainer", monitor: waitMonitor{}, env: ex.Env}
	return r.run(context.Background(), s.plan.Hooks.StartContainer, s.state(specs.StateCreated))
}

func (s stageHooks) state(status specs.ContainerState) *specs.State {
	return hookState(s.cfg.ID, s.cfg.Bundle, status, s.cfg.Pid, s.plan.Spec.Annotations)
}

// waitMonitor is the init stage's Monitor: nothing else reaps there, so it
// waits for the one child it forked.
type waitMonitor struct{}

func (waitMonitor) Fork(fork func() (int, error)) (int, <-chan Exit, error) {
	pid, err := fork()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan Exit, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
		st := ws.ExitStatus()
		if ws.Signaled() {
			st = 128 + int(ws.Signal())
		}
		ch <- Exit{Status: st, At: time.Now()}
	}()
	return pid, ch, nil
}
