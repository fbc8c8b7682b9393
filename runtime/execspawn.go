package runtime

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// nsenterEnv is the variable the nsenter constructor reads (nsenter.c).
const nsenterEnv = "_BOX_NSENTER"

// The exec stage's descriptors besides stdio: the sync socket is syncFD (3).
const execPidFD = 4

// keepDumpable makes the exec stage skip PR_SET_DUMPABLE: a negative
// control for tests only.
var keepDumpable = false

// testStageEnv is added to the exec stage's environment by tests.
var testStageEnv []string

// joinable are the namespaces the constructor joins from the init's pidfd,
// by their /proc/<pid>/ns name. The pid namespace is joined by the daemon.
var joinable = []struct {
	name string
	flag uintptr
}{
	{"user", unix.CLONE_NEWUSER},
	{"mnt", unix.CLONE_NEWNS},
	{"net", unix.CLONE_NEWNET},
	{"ipc", unix.CLONE_NEWIPC},
	{"uts", unix.CLONE_NEWUTS},
	{"cgroup", unix.CLONE_NEWCGROUP},
	{"time", unix.CLONE_NEWTIME},
}

// spawnExec forks the exec stage on a locked OS thread that joins the
// init's pid namespace for its children. The thread is given back to the
// Go runtime once its pid namespace for children is its own again; with an
// initial CPU affinity, or if that cannot be verified, it stays locked and
// dies with the goroutine. (A discarded thread costs more than a new one:
// when it is the main thread, which cannot exit, the runtime parks it for
// good and starts a template thread besides.)
func (c *Container) spawnExec(cfg ProcessConfig, plan *oci.ProcessPlan, exe string, child *os.File) (*Process, error) {
	type result struct {
		p   *Process
		err error
	}
	done := make(chan result, 1)
	go func() {
		lockOSThread()
		if err := setInitialAffinity(plan.ExecCPUAffinity); err != nil {
			done <- result{nil, err}
			return
		}
		p, err := c.forkExecStage(cfg, plan, exe, child)
		if a := plan.ExecCPUAffinity; (a == nil || a.Initial == nil) && restorePidNS() == nil {
			goruntime.UnlockOSThread()
		}
		done <- result{p, err}
	}()
	r := <-done
	return r.p, r.err
}

// restorePidNS undoes joinPidNS: the calling thread's children start in
// its own pid namespace again (setns to one's active pid namespace is
// always allowed). It fails unless that is verified.
func restorePidNS() error {
	fd, err := unix.Open("/proc/thread-self/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWPID); err != nil {
		return err
	}
	var own, children unix.Stat_t
	if err := unix.Fstat(fd, &own); err != nil {
		return err
	}
	if err := unix.Stat("/proc/thread-self/ns/pid_for_children", &children); err != nil {
		return err
	}
	if own.Dev != children.Dev || own.Ino != children.Ino {
		return errors.New("pid_for_children is not the thread's pid namespace")
	}
	return nil
}

// forkExecStage runs on the locked thread.
func (c *Container) forkExecStage(cfg ProcessConfig, plan *oci.ProcessPlan, exe string, child *os.File) (*Process, error) {
	flags, err := c.nsDiff()
	if err != nil {
		return nil, err
	}
	if err := c.joinPidNS(); err != nil {
		return nil, err
	}
	stdio := cfg.Stdio
	if plan.Terminal {
		stdio = [3]*os.File{}
	}
	env := fmt.Sprintf("%s=%d,%d,%#x", nsenterEnv, syncFD, execPidFD, flags)
	if keepDumpable {
		env += ",keep-dumpable"
	}
	pidfd := -1
	sys := &syscall.SysProcAttr{Setsid: true, PidFD: &pidfd}
	cgfd, v2, err := c.Cgroup.CloneFD()
	if err != nil {
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	if v2 {
		defer unix.Close(cgfd)
		sys.UseCgroupFD = true
		sys.CgroupFD = cgfd
	}
	files := []uintptr{devNull(stdio[0]), devNull(stdio[1]), devNull(stdio[2]), child.Fd(), uintptr(c.pidfd)}
	var joinEnv []string
	var tasks []*os.File
	if !v2 && plan.ExecCPUAffinity == nil {
		// cgroup v1: the stage joins the cgroup from its constructor, before
		// it joins the namespaces. Not with an exec CPU affinity, which the
		// daemon sets once the stage is in the cgroup (joining a cpuset
		// resets it).
		if files, joinEnv, tasks, err = selfJoin(c.Cgroup, files); err != nil {
			return nil, err
		}
		defer closeFiles(tasks...)
	}
	attr := &syscall.ProcAttr{
		Dir:   "/",
		Env:   append(append([]string{"GOMAXPROCS=1", env}, joinEnv...), testStageEnv...),
		Files: files,
		Sys:   sys,
	}
	pid, exited, err := cfg.Monitor.Fork(func() (int, error) {
		return syscall.ForkExec(exe, []string{"containerd-shim-box-v1", "exec"}, attr)
	})
	if err != nil {
		return nil, fmt.Errorf("start exec stage: %w", err)
	}
	return &Process{Pid: pid, exited: exited, pidfd: pidfd, selfJoined: tasks != nil}, nil
}

// nsDiff returns the CLONE_NEW* flags of the init's namespaces that differ
// from the calling thread's. Joining a user namespace one is already in
// fails (EINVAL), and joining the others again is wasted work.
func (c *Container) nsDiff() (uintptr, error) {
	var flags uintptr
	for _, ns := range joinable {
		same, err := c.sameNS(ns.name, ns.name)
		if errors.Is(err, unix.ENOENT) {
			continue // the kernel lacks this namespace type
		}
		if err != nil {
			return 0, err
		}
		if !same {
			flags |= ns.flag
		}
	}
	return flags, c.checkRunning()
}

// joinPidNS makes the calling thread's children start in the init's pid
// namespace.
//
// Preconditions: the calling goroutine is locked to its thread until
// restorePidNS has undone this.
func (c *Container) joinPidNS() error {
	same, err := c.sameNS("pid", "pid_for_children")
	if err != nil || same {
		return err
	}
	path := fmt.Sprintf("/proc/%d/ns/pid", c.Pid)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	// The pid could have been reused between Open and here only if init
	// exited and was reaped; its pidfd tells.
	if err := c.checkRunning(); err != nil {
		return err
	}
	if err := unix.Setns(fd, unix.CLONE_NEWPID); err != nil {
		return fmt.Errorf("join pid namespace of init %d: %w", c.Pid, err)
	}
	return nil
}

// sameNS reports whether the init's namespace initName is the calling
// thread's selfName.
func (c *Container) sameNS(initName, selfName string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/"+selfName, &a); err != nil {
		return false, fmt.Errorf("stat own %s namespace: %w", selfName, err)
	}
	path := fmt.Sprintf("/proc/%d/ns/%s", c.Pid, initName)
	if err := unix.Stat(path, &b); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			if rerr := c.checkRunning(); rerr != nil {
				return false, rerr
			}
		}
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}
