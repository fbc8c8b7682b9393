package runtime

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime/console"
	"github.com/boxrt/containerd-shim-box-v1/runtime/nsenter"
	"github.com/boxrt/containerd-shim-box-v1/runtime/process"
	"github.com/boxrt/containerd-shim-box-v1/runtime/rootfs"
	"github.com/boxrt/containerd-shim-box-v1/runtime/seccomp"
)

func lockOSThread() { goruntime.LockOSThread() }

// InitMain is the container-side init stage ("containerd-shim-box-v1 init").
// It is born inside the container's new namespaces (and cgroup), builds the
// container from the config the daemon sends, reports ready, and on "start"
// execs the container's process. It never returns.
//
// Preconditions:
//   - The calling goroutine is the main goroutine and holds
//     runtime.LockOSThread (taken in an init function, before main), so every
//     per-thread change (credentials, capabilities) lands on the thread that
//     calls execve.
//   - fd 3 is the stage's end of the sync socketpair (see sync.go).
func InitMain() {
	// Nothing in the container may ptrace or open /proc/<pid>/exe of this
	// helper before it has become the container's process.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	conn := &syncConn{f: os.NewFile(syncFD, "sync")}
	if err := runInit(conn); err != nil {
		_ = conn.send(errorMessage(err))
		os.Exit(1)
	}
	// runInit returns only on error.
	os.Exit(1)
}

func runInit(conn *syncConn) error {
	m, err := conn.recv()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if m.Type != msgConfig || m.Config == nil || m.Config.Spec == nil {
		return fmt.Errorf("expected config, got %q", m.Type)
	}
	if m.Config.Joined && !nsenter.Ran() {
		// This process would be in the daemon's mount namespace.
		return errors.New("init stage: namespaces not joined: the binary lacks the runtime/nsenter constructor (built without cgo?)")
	}
	if m.Config.UnshareCgroupNS {
		// In the container's cgroup by now: the namespace is rooted there.
		// This thread is the one that execs the container's process.
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("unshare the cgroup namespace: %w", err)
		}
	}
	plan, err := oci.NewPlan(m.Config.Spec, m.Config.Bundle)
	if err != nil {
		return err
	}
	if err := attachIDMapped(plan, m.Config.IDMapFDs); err != nil {
		return err
	}
	if m.Config.CgroupfsWritable {
		unprotectCgroupfs(plan)
	}
	plan.NoPivotRoot = m.Config.NoPivotRoot
	if !m.Config.NoNewKeyring {
		if err := joinSessionKeyring(m.Config.ID); err != nil {
			return err
		}
	}
	hooks := stageHooks{conn: conn, cfg: m.Config, plan: plan}
	filter, err := m.Config.Filter.program()
	if err != nil {
		return err
	}
	ex, master, err := prepare(plan, filter, m.Config.Terminal, hooks.beforePivot, listenerSender(conn))
	if err != nil {
		return err
	}
	fd := -1
	if master != nil {
		defer master.Close()
		fd = int(master.Fd())
	}
	if err := conn.sendFD(message{Type: msgReady, Console: master != nil}, fd); err != nil {
		return fmt.Errorf("report ready: %w", err)
	}
	m, err = conn.recv()
	if err != nil {
		if errors.Is(err, errEOF) {
			// The daemon went away or deleted the container before start.
			os.Exit(0)
		}
		return fmt.Errorf("wait for start: %w", err)
	}
	if m.Type != msgStart {
		return fmt.Errorf("expected start, got %q", m.Type)
	}
	if err := hooks.startContainer(ex); err != nil {
		return err
	}
	return ex.Run()
}

// prepare builds the container around the calling process, in order:
// root filesystem, beforePivot (the hooks), pivot_root, the terminal (a pty of the container's
// devpts, when asked), hostname, sysctls, readonly and masked paths, then
// the process's credentials (process.Prepare). It returns the pty master
// when there is a terminal.
//
// A filter with NOTIFY rules is loaded by process.PrepareNotify, which hands
// its listener to listener.
func prepare(p *oci.Plan, filter *seccomp.Program, terminal bool, beforePivot func() error, listener func(fd int) error) (_ *process.Exec, master *os.File, retErr error) {
	if err := rootfs.PrepareWith(p, beforePivot); err != nil {
		return nil, nil, fmt.Errorf("prepare rootfs: %w", err)
	}
	if terminal {
		// After rootfs.Prepare: /dev/ptmx is now the container's devpts.
		var size *specs.Box
		if p.Spec.Process != nil {
			size = p.Spec.Process.ConsoleSize
		}
		m, err := console.Setup(size)
		if err != nil {
			return nil, nil, fmt.Errorf("set up terminal: %w", err)
		}
		master = m
		defer func() {
			if retErr != nil {
				master.Close()
			}
		}()
	}
	if err := setNames(p); err != nil {
		return nil, nil, err
	}
	if err := writeSysctls(p.Sysctl); err != nil {
		return nil, nil, err
	}
	if err := rootfs.Finalize(p); err != nil {
		return nil, nil, fmt.Errorf("finalize rootfs: %w", err)
	}
	ex, err := process.PrepareNotify(p.Process, filter, listener)
	if err != nil {
		return nil, nil, err
	}
	return ex, master, nil
}

// joinSessionKeyring gives the container a session keyring of its own, so
// its processes neither see nor fill the daemon's (and the host's) keys.
// Kernels without keyrings are fine: there is nothing to share.
func joinSessionKeyring(id string) error {
	if _, err := unix.KeyctlJoinSessionKeyring("_ses." + id); err != nil && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("join a new session keyring: %w", err)
	}
	return nil
}

// setNames sets the hostname and domainname in the new UTS namespace.
func setNames(p *oci.Plan) error {
	if p.Hostname != "" {
		if err := unix.Sethostname([]byte(p.Hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", p.Hostname, err)
		}
	}
	if p.Domainname != "" {
		if err := unix.Setdomainname([]byte(p.Domainname)); err != nil {
			return fmt.Errorf("set domainname %q: %w", p.Domainname, err)
		}
	}
	return nil
}

// writeSysctls writes linux.sysctl through the container's /proc/sys,
// from a verified procfs handle and never across a mount or a symlink
// (process.WriteProcfs: CVE-2019-16884, CVE-2025-52881).
//
// Preconditions: the container's root, with its own procfs at /proc.
func writeSysctls(sysctl map[string]string) error {
	if len(sysctl) == 0 {
		return nil
	}
	proc, err := process.OpenProcfs("/proc")
	if err != nil {
		return fmt.Errorf("linux.sysctl: %w", err)
	}
	defer unix.Close(proc)
	for k, v := range sysctl {
		rel, err := sysctlPath(k)
		if err != nil {
			return err
		}
		if err := process.WriteProcfs(proc, rel, v); err != nil {
			if errdefs.IsNotFound(err) {
				return fmt.Errorf("linux.sysctl: %q does not exist: %w", k, errdefs.ErrInvalidArgument)
			}
			return fmt.Errorf("linux.sysctl %s=%q: %w", k, v, err)
		}
	}
	return nil
}

// sysctlPath is the file of sysctl key below /proc: "sys/" and the key with
// dots as separators, or, as sysctl(8) reads a key with a slash, with
// slashes as separators and dots kept ("net/ipv4/conf/eth0.1/forwarding").
// Every component must be a name: no empty, "." or ".." component and no
// NUL, so the path stays below /proc/sys. A bad key is
// errdefs.ErrInvalidArgument.
func sysctlPath(key string) (string, error) {
	rel := key
	if !strings.Contains(key, "/") {
		rel = strings.ReplaceAll(key, ".", "/")
	}
	for _, name := range strings.Split(rel, "/") {
		if name == "" || name == "." || name == ".." || strings.ContainsRune(name, 0) {
			return "", fmt.Errorf("linux.sysctl: invalid key %q: %w", key, errdefs.ErrInvalidArgument)
		}
	}
	return "sys/" + rel, nil
}
