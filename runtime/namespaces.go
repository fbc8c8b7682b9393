package runtime

// How the init stage gets its namespaces.
//
// Direct (every container that joins no user, mount or time namespace by
// path and has no time offsets; the common case, no extra process):
//
//	daemon thread (locked, discarded after)        box init
//	  setns(net|ipc|uts|pid|cgroup by path)
//	  clone3(CloneFlags, uid/gid maps) ---------------> born in its namespaces
//
// Held (a user, mount or time namespace joined by path, or time offsets).
// A multi-threaded process cannot setns into those; namespaces created next
// to a joined user namespace must be created inside it to be owned by it;
// a new pid namespace then needs a fork inside it (unshare(CLONE_NEWPID)
// only affects children); and time offsets must be written before any
// process enters the namespace. So a single-threaded holder (nsenter.c, no
// Go runtime) does what runc's nsexec does: join, unshare, fork.
//
//	daemon                                holder (C constructor only)
//	  open each namespace file, check type
//	  fork (into the cgroup) -------------->|
//	  [v1: add holder to cgroup]            |
//	  --- go ------------------------------>|  setns all but user, user
//	                                        |  (becomes root), the deferred
//	                                        |  [unshare(user)]
//	  <-- userns  (write id maps) --- go -->|  [become root]
//	                                        |  unshare(the rest): mnt, net,
//	                                        |  ..., pid and time for children
//	  <-- ready ----------------------------|
//	  [write /proc/<holder>/timens_offsets]
//	  --- go ------------------------------>|  fork -----------> box init
//	  <-- ready {pid} ----------------------|       (pid 1, new session,
//	  pidfd_open(pid), register it          |       Go runtime starts)
//	  close ------------------------------->|  exits: box init is
//	                                           reparented to the daemon
//
// The init stage is thus born inside all of the container's namespaces
// before its Go runtime starts, and is the daemon's child (directly, or as
// a child subreaper) when Create goes on.

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// nsHoldEnv is the variable that makes the constructor a holder (nsenter.c).
const nsHoldEnv = "_BOX_NSHOLD"

// msgUserNS is the holder's request for the id maps of the user namespace
// it created.
const msgUserNS msgType = "userns"

// needsHolder reports whether p joins a namespace that only a
// single-threaded process can join (user, mount or time), or has time
// offsets: those are written to /proc/<pid>/timens_offsets, which is the
// main thread's, and the daemon's main thread cannot be given a time
// namespace for its children.
func needsHolder(p *oci.Plan) bool {
	if len(p.Spec.Linux.TimeOffsets) > 0 {
		return true
	}
	for _, j := range p.Join {
		switch j.Type {
		case specs.UserNamespace, specs.MountNamespace, specs.TimeNamespace:
			return true
		}
	}
	return false
}

// nsFile is an open namespace file to join.
type nsFile struct {
	oci.NamespaceJoin
	f *os.File
}

// openNamespaces opens every namespace of joins and checks that each is a
// namespace of its type, so the join itself cannot be redirected by a path
// swapped meanwhile. A missing path is errdefs.ErrNotFound; a file that is
// not a namespace of that type, or the runtime's own user namespace,
// errdefs.ErrInvalidArgument.
func openNamespaces(joins []oci.NamespaceJoin) (_ []nsFile, retErr error) {
	var files []nsFile
	defer func() {
		if retErr != nil {
			closeNamespaces(files)
		}
	}()
	for _, j := range joins {
		f, err := openNamespace(j)
		if err != nil {
			return nil, err
		}
		files = append(files, nsFile{j, f})
	}
	return files, nil
}

func closeNamespaces(files []nsFile) {
	for _, n := range files {
		n.f.Close()
	}
}

func openNamespace(j oci.NamespaceJoin) (*os.File, error) {
	// O_NONBLOCK: a FIFO planted at the path must not hang Create.
	fd, err := unix.Open(j.Path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: open %s namespace %s: %w", j.Field, j.Type, j.Path, classifyOpen(err))
	}
	f := os.NewFile(uintptr(fd), j.Path)
	t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %s is not a namespace file (%w): %w", j.Field, j.Path, err, errdefs.ErrInvalidArgument)
	}
	if uintptr(t) != j.Flag {
		f.Close()
		return nil, fmt.Errorf("%s: %s is a %s namespace, not %s: %w", j.Field, j.Path, nsTypeName(uintptr(t)), j.Type, errdefs.ErrInvalidArgument)
	}
	if j.Type == specs.UserNamespace {
		var own, st unix.Stat_t
		if err := unix.Fstat(fd, &st); err == nil && unix.Stat("/proc/self/ns/user", &own) == nil &&
			st.Dev == own.Dev && st.Ino == own.Ino {
			f.Close()
			return nil, fmt.Errorf("%s: %s is the runtime's own user namespace; leave the user namespace out to share it: %w", j.Field, j.Path, errdefs.ErrInvalidArgument)
		}
	}
	return f, nil
}

func nsTypeName(flag uintptr) string {
	for _, t := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.MountNamespace,
		specs.IPCNamespace, specs.UTSNamespace, specs.UserNamespace, specs.CgroupNamespace, specs.TimeNamespace} {
		if f, _ := oci.NamespaceFlag(t); f == flag {
			return string(t)
		}
	}
	return fmt.Sprintf("%#x", flag)
}

func classifyOpen(err error) error {
	if errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	}
	return err
}

// setUserNamespace maps ids for a new user namespace. The parent writes the
// maps while the child waits, and the child becomes root of the namespace
// before it execs the init stage: otherwise its euid would be the unmapped
// overflow id and execve would drop every capability it has there.
//
// setgroups(2) stays allowed, as runc leaves it when a privileged parent
// writes the maps: the container's root may set the process's groups.
// ("deny" is only required of an unprivileged writer of gid_map.)
func setUserNamespace(sys *syscall.SysProcAttr, p *oci.Plan) {
	if p.CloneFlags&unix.CLONE_NEWUSER == 0 {
		return
	}
	for _, m := range p.Spec.Linux.UIDMappings {
		sys.UidMappings = append(sys.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	for _, m := range p.Spec.Linux.GIDMappings {
		sys.GidMappings = append(sys.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	sys.GidMappingsEnableSetgroups = true
	sys.Credential = &syscall.Credential{Uid: 0, Gid: 0}
}

// timensOffsets is linux.timeOffsets in the format of
// /proc/<pid>/timens_offsets, or "" when there are none.
func timensOffsets(p *oci.Plan) string {
	var b strings.Builder
	for _, clock := range []string{"monotonic", "boottime"} {
		if o, ok := p.Spec.Linux.TimeOffsets[clock]; ok {
			fmt.Fprintf(&b, "%s %d %d\n", clock, o.Secs, o.Nanosecs)
		}
	}
	return b.String()
}

// writeTimensOffsets writes offsets to path (a timens_offsets file) in one
// write, as the kernel requires before any process enters the namespace.
func writeTimensOffsets(path, offsets string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("linux.timeOffsets: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(offsets); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ERANGE) {
			err = fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("linux.timeOffsets: write %q: %w", strings.TrimSpace(offsets), err)
	}
	return nil
}

// joinDirect joins files on the calling thread; its children are born in
// them (net, ipc, uts and cgroup at once, pid for children).
//
// Preconditions: the calling goroutine is locked to its thread for good.
func joinDirect(files []nsFile) error {
	for _, n := range files {
		if err := unix.Setns(int(n.f.Fd()), int(n.Flag)); err != nil {
			return fmt.Errorf("%s: join %s namespace %s: %w", n.Field, n.Type, n.Path, classifySetns(err))
		}
	}
	return nil
}

func classifySetns(err error) error {
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return err
}

// onLockedThread runs f on a new locked OS thread that is never unlocked,
// so namespace changes made by f die with it, or directly when !lock.
func onLockedThread[T any](lock bool, f func() T) T {
	if !lock {
		return f()
	}
	done := make(chan T, 1)
	go func() {
		lockOSThread()
		done <- f()
	}()
	return <-done
}

// forkResult is what forking a stage gives.
type forkResult struct {
	pid    int
	exited <-chan Exit
	err    error
}

// spawnDirect starts the init stage as described at the top of this file,
// into the cgroup of cgroupFD (cgroup v2; -1 on v1), with env added to its
// environment.
func (c *Container) spawnDirect(cfg CreateConfig, exe string, files []uintptr, cgroupFD int, env []string) error {
	p := cfg.Plan
	pidfd := -1
	sys := &syscall.SysProcAttr{Setsid: true, PidFD: &pidfd, Cloneflags: p.CloneFlags}
	if cgroupFD >= 0 {
		sys.UseCgroupFD, sys.CgroupFD = true, cgroupFD
	}
	setUserNamespace(sys, p)
	joins, err := openNamespaces(p.Join)
	if err != nil {
		return err
	}
	defer closeNamespaces(joins)
	r := onLockedThread(len(joins) > 0, func() forkResult {
		if err := joinDirect(joins); err != nil {
			return forkResult{err: err}
		}
		return forkStage(cfg.Monitor, exe, "init", files, sys, env)
	})
	if r.err != nil {
		return r.err
	}
	c.Pid, c.exited, c.pidfd = r.pid, r.exited, pidfd
	return nil
}

// forkStage forks exe as a stage ("init") with files as its descriptors.
func forkStage(m Monitor, exe, stage string, files []uintptr, sys *syscall.SysProcAttr, env []string) forkResult {
	attr := &syscall.ProcAttr{
		Dir:   "/",
		Env:   append([]string{"GOMAXPROCS=1"}, env...),
		Files: files,
		Sys:   sys,
	}
	pid, exited, err := m.Fork(func() (int, error) {
		return syscall.ForkExec(exe, []string{"containerd-shim-box-v1", stage}, attr)
	})
	if err != nil {
		return forkResult{err: fmt.Errorf("start container %s: %w", stage, err)}
	}
	return forkResult{pid: pid, exited: exited}
}

// testCgroupfsWritable is a test hook, the negative control of
// CVE-2023-25809: the init stage mounts the cgroupfs as the spec says even
// in a user namespace without a cgroup namespace (see unprotectCgroupfs).
var testCgroupfsWritable = false

// unprotectCgroupfs undoes oci's read-only cgroup mounts (test hook only).
func unprotectCgroupfs(p *oci.Plan) {
	for i, m := range p.Mounts {
		if m.Type == "cgroup" || m.Type == "cgroup2" {
			p.Mounts[i].Flags = m.Flags &^ unix.MS_RDONLY
			for _, o := range p.Spec.Mounts[i].Options {
				if o == "ro" {
					p.Mounts[i].Flags |= unix.MS_RDONLY
				}
			}
		}
	}
}
