package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime/cgroup"
	"github.com/boxrt/containerd-shim-box-v1/runtime/process"
	"github.com/boxrt/containerd-shim-box-v1/runtime/seccomp"
)

// Exit is how a process ended.
type Exit struct {
	// Status is the exit code, or 128+signal when it was killed by one.
	Status int
	At     time.Time
}

// Monitor collects the exit status of the processes the runtime starts. The
// daemon implements it as the reaper of all its children.
type Monitor interface {
	// Fork calls fork, which starts exactly one child and returns its pid,
	// such that the child's exit cannot be collected before Fork has
	// registered it. The channel receives the child's exit exactly once.
	Fork(fork func() (int, error)) (pid int, exited <-chan Exit, err error)
}

// CreateConfig is what Create needs.
type CreateConfig struct {
	ID     string
	Bundle string
	// Plan is the validated plan of the bundle's spec (oci.NewPlan).
	Plan *oci.Plan
	// Stdio are the container's stdin, stdout and stderr; nil means /dev/null.
	// Ignored when Terminal.
	Stdio [3]*os.File
	// Terminal gives the init process a pty from the container's devpts as
	// its controlling terminal and stdio; Container.Console is the master.
	Terminal bool
	// NoPivotRoot chroots into a moved root instead of pivot_root.
	NoPivotRoot bool
	// NoNewKeyring keeps the daemon's session keyring instead of giving
	// the container a new one.
	NoNewKeyring bool
	// Monitor collects the container's exit.
	Monitor Monitor
}

// Container is a container whose init process exists. Its methods are safe
// for concurrent use except Start, which is called once.
type Container struct {
	ID     string
	Pid    int
	Plan   *oci.Plan
	Cgroup cgroup.Cgroup
	// Console is the pty master when CreateConfig.Terminal, else nil. It is
	// set when Create returns; the caller owns it and closes it.
	Console *os.File

	pidfd  int
	sync   *syncConn
	exited <-chan Exit
	// setupExit is the init's exit when Create killed it (see kill).
	setupExit *Exit
	// filter is linux.seccomp compiled, for the init and every exec.
	filter *seccomp.Program
	// notify is where the filter's listeners go, when it has NOTIFY rules
	// (seccompnotify.go).
	notify *notifyTarget
	// lateCgroupNS: the init stage makes its new cgroup namespace itself,
	// once it is in its cgroup (see spawn).
	lateCgroupNS bool
	// selfJoined: the init stage joins its v1 cgroup itself (see spawn).
	selfJoined bool

	// bundle and monitor serve the hooks run by the daemon (hooks.go).
	bundle       string
	monitor      Monitor
	poststopOnce sync.Once
}

// Exited receives the init process's exit exactly once.
func (c *Container) Exited() <-chan Exit { return c.exited }

// Create makes the container: its cgroup, namespaces and root filesystem,
// with the init process prepared up to the point of execve and waiting for
// Start. If anything fails, everything made so far is removed.
func Create(ctx context.Context, cfg CreateConfig) (_ *Container, retErr error) {
	p := cfg.Plan
	if err := checkHost(p); err != nil {
		return nil, err
	}
	defer func() {
		// Runs last: a failed create continues the lifecycle at "destroy"
		// and its poststop hooks (errors logged, not returned).
		if retErr != nil && len(p.Hooks.Poststop) > 0 {
			// Not cut short by the ctx that may have failed Create.
			if err := runPoststop(context.WithoutCancel(ctx), cfg.ID, cfg.Bundle, p, cfg.Monitor); err != nil {
				// Reported, not classified: the create's error stays what
				// failed it.
				retErr = fmt.Errorf("%w (then: %v)", retErr, err)
			}
		}
	}()
	cg, err := cgroup.New(p.CgroupsPath, cgroupResources(p))
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", p.CgroupsPath, err)
	}
	defer func() {
		if retErr != nil {
			if err := cg.Delete(); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("remove cgroup: %w", err))
			}
		}
	}()

	exe, err := SealedExe()
	if err != nil {
		return nil, err
	}
	parent, child, err := newSyncPair()
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			parent.close()
		}
	}()

	trees, err := idmappedMounts(cfg, exe)
	if err != nil {
		return nil, err
	}
	extra, idmapFDs := stageFiles(trees)
	defer closeFiles(extra...)

	c := &Container{ID: cfg.ID, Cgroup: cg, sync: parent, pidfd: -1, bundle: cfg.Bundle, monitor: cfg.Monitor}
	err = c.spawn(cfg, exe, child, extra)
	child.Close()
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			c.kill()
			// Without a pid namespace of its own, what the init stage
			// started (a createContainer hook's children) outlives it.
			_ = cg.Kill(unix.SIGKILL)
		}
	}()

	// The stage's Go runtime starts meanwhile (~3 ms) and then waits for
	// its config: compile the seccomp profile now. A bad profile fails
	// Create before the stage is told anything (the stages load this
	// program; they never compile).
	filter, err := process.CompileSeccomp(p.Spec.Linux.Seccomp)
	if err != nil {
		return nil, err
	}
	c.filter, c.notify = filter, notifyTargetOf(p.Spec.Linux.Seccomp, filter)
	// From here on the container holds the compiled program, not the
	// profile (tens of KiB of strings per container in a grouped daemon).
	p = planWithoutSeccomp(p)
	c.Plan = p

	if !bornInCgroup(cg) && !c.selfJoined {
		// cgroup v1: place the child before it is told to do anything.
		if err := cg.Add(c.Pid); err != nil {
			return nil, fmt.Errorf("add init %d to cgroup: %w", c.Pid, err)
		}
	}
	resetAffinity(c.Pid)
	if err := c.moveNetDevices(p.NetDevices); err != nil {
		return nil, err
	}
	config := &stageConfig{
		ID: cfg.ID, Bundle: cfg.Bundle, Spec: p.Spec, Filter: encodeFilter(filter), Terminal: cfg.Terminal,
		NoPivotRoot: cfg.NoPivotRoot, NoNewKeyring: cfg.NoNewKeyring,
		Pid: c.Pid, HookEnv: hookEnvFor(p), Joined: needsHolder(p),
		IDMapFDs:         idmapFDs,
		CgroupfsWritable: testCgroupfsWritable,
		UnshareCgroupNS:  c.lateCgroupNS,
	}
	if err := parent.send(message{Type: msgConfig, Config: config}); err != nil {
		return nil, fmt.Errorf("send config to init: %w", err)
	}
	console, err := c.awaitSetup(ctx, cfg.Terminal)
	if errors.Is(err, errEOF) {
		return nil, fmt.Errorf("container init exited during setup (exit status %d)", c.kill().Status)
	}
	if err != nil {
		return nil, err
	}
	c.Console = console
	if err := applyDeferredPids(cg, p); err != nil {
		return nil, err
	}
	return c, nil
}

// awaitSetup waits for the init stage to be ready, serving its request to
// run the runtime's hooks on the way when the spec has such hooks.
func (c *Container) awaitSetup(ctx context.Context, terminal bool) (*os.File, error) {
	if c.Plan.Hooks.BeforePivot() {
		if err := c.serveHooks(ctx, c.sync); err != nil {
			return nil, err
		}
	}
	if err := c.awaitListener(ctx, c.sync, c.pidfd, c.Pid, specs.StateCreating); err != nil {
		return nil, err
	}
	return awaitReady(c.sync, terminal, "container init")
}

// applyDeferredPids sets the pids limit once the init stage is ready.
//
// The limit counts threads, and the Go init stage runs several: a limit as
// low as a container may legitimately ask for (pids.max=4) would stop the
// stage from starting its runtime. Lowering pids.max below the current
// count is allowed; after execve the container's process is one thread,
// and nothing the container runs exists before the limit is in place.
func applyDeferredPids(cg cgroup.Cgroup, p *oci.Plan) error {
	if p.Resources == nil || p.Resources.Pids == nil {
		return nil
	}
	if err := cg.Update(&specs.LinuxResources{Pids: p.Resources.Pids}); err != nil {
		return fmt.Errorf("linux.resources.pids: %w", err)
	}
	return nil
}

// spawn starts the init stage in its namespaces (see namespaces.go),
// with child as its sync socket and extra as its descriptors from 4 on.
func (c *Container) spawn(cfg CreateConfig, exe string, child *os.File, extra []*os.File) error {
	stdio := cfg.Stdio
	if cfg.Terminal {
		stdio = [3]*os.File{}
	}
	files := []uintptr{devNull(stdio[0]), devNull(stdio[1]), devNull(stdio[2]), child.Fd()}
	for _, f := range extra {
		files = append(files, f.Fd())
	}
	cgfd, v2, err := c.Cgroup.CloneFD()
	if err != nil {
		return fmt.Errorf("open cgroup: %w", err)
	}
	if !v2 {
		cgfd = -1
		if cfg.Plan.CloneFlags&unix.CLONE_NEWCGROUP != 0 {
			// The stage is placed in its cgroup after the clone (v1, the
			// systemd driver): a cgroup namespace made by the clone would
			// be rooted at the daemon's cgroup. The stage unshares it once
			// it is in place (stageConfig.UnshareCgroupNS).
			plan := *cfg.Plan
			plan.CloneFlags &^= unix.CLONE_NEWCGROUP
			cfg.Plan = &plan
			c.lateCgroupNS = true
		}
	} else {
		defer unix.Close(cgfd)
	}
	if needsHolder(cfg.Plan) {
		return c.spawnHeld(cfg, exe, files, cgfd)
	}
	var env []string
	// v1: the stage joins its cgroup itself, unless it gets a new user
	// namespace (its constructor would run inside it).
	if !v2 && cfg.Plan.CloneFlags&unix.CLONE_NEWUSER == 0 {
		var tasks []*os.File
		var err error
		files, env, tasks, err = selfJoin(c.Cgroup, files)
		if err != nil {
			return err
		}
		defer closeFiles(tasks...)
		c.selfJoined = tasks != nil
	}
	return c.spawnDirect(cfg, exe, files, cgfd, env)
}

// selfJoin prepares a stage to join cg itself, from its constructor before
// its Go runtime starts (nsenter.c): it appends the cgroup's v1 tasks files
// to files and returns the environment that names them. Where cg is not a
// cgroup.SelfJoiner (v2, the systemd driver) it returns files unchanged and
// no tasks. The caller closes tasks once the stage is forked.
func selfJoin(cg cgroup.Cgroup, files []uintptr) (_ []uintptr, env []string, tasks []*os.File, err error) {
	sj, ok := cg.(cgroup.SelfJoiner)
	if !ok {
		return files, nil, nil, nil
	}
	if tasks, err = sj.TaskFiles(); err != nil {
		return nil, nil, nil, err
	}
	fds := make([]string, len(tasks))
	for i, f := range tasks {
		fds[i] = strconv.Itoa(len(files))
		files = append(files, f.Fd())
	}
	return files, []string{cgroupTasksEnv + "=" + strings.Join(fds, ",")}, tasks, nil
}

// cgroupTasksEnv makes the init stage's constructor join its v1 cgroup
// (nsenter.c): the tasks files to write "0" to, by descriptor number.
const cgroupTasksEnv = "_BOX_CGROUP_TASKS"

var nullFile = func() *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		panic(err)
	}
	return f
}()

func devNull(f *os.File) uintptr {
	if f == nil {
		return nullFile.Fd()
	}
	return f.Fd()
}

// Start lets the init process execve the container's process. It returns
// once execve has happened, or with the reason it could not.
func (c *Container) Start() error {
	defer c.sync.close()
	if err := c.sync.send(message{Type: msgStart}); err != nil {
		return fmt.Errorf("tell init to start: %w", err)
	}
	m, err := c.sync.recv()
	switch {
	case errors.Is(err, errEOF):
		return c.poststart()
	case err != nil:
		return fmt.Errorf("read from container init: %w", err)
	case m.Type == msgError:
		return remoteError(m)
	default:
		return fmt.Errorf("unexpected %q from container init", m.Type)
	}
}

// Signal sends sig to the init process through its pidfd, so a recycled pid
// is never signalled. A process that has already exited gives
// errdefs.ErrNotFound.
func (c *Container) Signal(sig syscall.Signal) error {
	if err := unix.PidfdSendSignal(c.pidfd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("process already finished: %w", errdefs.ErrNotFound)
		}
		return fmt.Errorf("signal %d to init %d: %w", sig, c.Pid, err)
	}
	return nil
}

// SignalAll sends sig to every process of the container.
func (c *Container) SignalAll(sig syscall.Signal) error {
	err := c.Signal(sig)
	if errors.Is(err, errdefs.ErrNotFound) {
		err = nil
	}
	return errors.Join(err, c.Cgroup.Kill(sig))
}

// Pids lists the container's processes.
func (c *Container) Pids() ([]int, error) { return c.Cgroup.Pids() }

// kill ends the init process and returns its exit (setup failed). It is
// idempotent: Create's error path may call it twice.
//
// Preconditions: only Create's goroutine uses c (c has not been returned).
func (c *Container) kill() Exit {
	if c.setupExit == nil {
		if c.pidfd >= 0 {
			_ = unix.PidfdSendSignal(c.pidfd, unix.SIGKILL, nil, 0)
		}
		e := <-c.exited
		c.setupExit = &e
		unix.Close(c.pidfd)
		c.pidfd = -1
	}
	return *c.setupExit
}

// Destroy removes what is left of the container after its init exited: any
// remaining processes are killed and the cgroup is removed. It is idempotent.
//
// Preconditions: the init process has exited (Exited has delivered).
func (c *Container) Destroy() error {
	if c.pidfd >= 0 {
		unix.Close(c.pidfd)
		c.pidfd = -1
	}
	if c.sync != nil {
		c.sync.close()
	}
	// Usually nothing is left and Delete succeeds at once (on v1 an rmdir
	// per hierarchy); it refuses while processes remain, which are killed
	// and waited for (up to 0.5 s) before it is tried again.
	var err error
	for i := 0; i < 50; i++ {
		if err = c.Cgroup.Delete(); err == nil || !errdefs.IsFailedPrecondition(err) {
			break
		}
		if kerr := c.Cgroup.Kill(unix.SIGKILL); kerr != nil {
			return errors.Join(kerr, fmt.Errorf("remove cgroup %s: %w", c.Cgroup.Path(), err))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", c.Cgroup.Path(), err)
	}
	return nil
}

// cgroupResources is the spec's resources with the device rules every
// container needs appended, so its default devices are usable.
func cgroupResources(p *oci.Plan) *specs.LinuxResources {
	var r specs.LinuxResources
	if p.Resources != nil {
		r = *p.Resources
	}
	r.Pids = nil // applied by applyDeferredPids
	r.Devices = append(append([]specs.LinuxDeviceCgroup(nil), r.Devices...), oci.DefaultDeviceRules...)
	return &r
}

// bornInCgroup reports whether children are forked straight into cg
// (CLONE_INTO_CGROUP, cgroup v2), closing the descriptor CloneFD opens to
// tell (one per Create and exec would otherwise leak in the daemon).
func bornInCgroup(cg cgroup.Cgroup) bool {
	fd, ok, _ := cg.CloneFD()
	if fd >= 0 {
		unix.Close(fd)
	}
	return ok
}

// planWithoutSeccomp is a shallow copy of p whose spec and process have no
// linux.seccomp.
func planWithoutSeccomp(p *oci.Plan) *oci.Plan {
	if p.Spec.Linux == nil || p.Spec.Linux.Seccomp == nil {
		return p
	}
	c := *p
	c.Spec = withoutSeccomp(p.Spec)
	if p.Process != nil {
		proc := *p.Process
		proc.Seccomp = nil
		c.Process = &proc
	}
	return &c
}

// withoutSeccomp is a shallow copy of s without linux.seccomp, which the
// init stage gets compiled (stageConfig.Filter) and need not decode.
func withoutSeccomp(s *specs.Spec) *specs.Spec {
	if s.Linux == nil || s.Linux.Seccomp == nil {
		return s
	}
	c, l := *s, *s.Linux
	l.Seccomp = nil
	c.Linux = &l
	return &c
}
