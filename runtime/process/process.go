// Package process turns the calling thread into a container process: it
// applies an oci.ProcessPlan (rlimits, credentials, capabilities, cwd) and
// execs the process's program.
//
// It is used by the container-side init and exec stages, after the
// container's root is in place.
package process

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime/seccomp"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// Exec is a prepared execve.
type Exec struct {
	// Path is the program to execute, found in the process's PATH when
	// Argv[0] has no slash.
	Path string
	// Argv and Env are passed to execve as they are; Env has HOME.
	Argv, Env []string
	// filter is loaded by Run right before execve (no_new_privs case).
	filter *seccomp.Program
}

// Prepare applies the process plan to the calling thread and returns the
// execve to run. The steps, in order:
//
//  1. rlimits, then oom_score_adj (per process);
//  2. the user, resolved against the current root's /etc/passwd and
//     /etc/group; HOME is added to the environment if it is absent;
//     the umask, when the spec sets one;
//     the AppArmor profile or SELinux label for execve (before
//     no_new_privs, which restricts profile changes);
//  3. no_new_privs, when asked; then a first chdir to cwd, as root (see 7);
//     then scheduler, I/O priority, personality and memory policy, in
//     runc's order, while CAP_SYS_NICE is held and before seccomp;
//  4. the bounding set is reduced to Caps.Bounding (needs CAP_SETPCAP);
//  5. setgroups, setresgid, setresuid, keeping the permitted set across the
//     uid change (PR_SET_KEEPCAPS);
//  6. the effective, permitted and inheritable sets (capset), then the
//     ambient set (the kernel raises only caps already in both);
//  7. cwd; a chdir that root may not make (EACCES on a root-squashed
//     volume) is made as the user instead; the resulting cwd must be inside
//     the root;
//  8. args[0] is looked up in the PATH of the process's environment.
//
// Credentials, capabilities and no_new_privs are per thread: they are set on
// the calling thread only, with per-thread system calls (never
// syscall.Setuid, which changes every thread), and reach the program through
// execve from that same thread (Exec.Run).
//
// Preconditions:
//   - runtime.LockOSThread is held by the caller and never released.
//   - The calling process is inside the container's final root (after
//     pivot_root) and its /proc, as uid 0 with every capability.
//
// On error the thread is left half-changed and must not be reused for
// anything but reporting the error and exiting.
func Prepare(p *oci.ProcessPlan) (*Exec, error) {
	filter, err := CompileSeccomp(p.Seccomp)
	if err != nil {
		return nil, err
	}
	return PrepareCompiled(p, filter)
}

// PrepareCompiled is Prepare with the process's seccomp filter already
// compiled (nil: none), in place of p.Seccomp. The daemon compiles a
// container's profile once, to refuse a bad one before anything runs, and
// the stages only load the program it sends them. A filter with
// NeedsListener needs PrepareNotify.
func PrepareCompiled(p *oci.ProcessPlan, filter *seccomp.Program) (*Exec, error) {
	return PrepareNotify(p, filter, nil)
}

// PrepareNotify is PrepareCompiled for a filter that may have
// SCMP_ACT_NOTIFY rules (filter.NeedsListener): such a filter is loaded
// before PrepareNotify returns, in either case (without no_new_privs at the
// usual point; with it as the last step, after the PATH lookup, as runc
// does), and listener is called with its listener fd right after the load,
// so the seccomp agent can answer before any notified syscall of the setup
// that follows waits for it. The fd stays open (close-on-exec) until
// execve: the daemon takes its own copy with pidfd_getfd when it reads the
// number, and the stage need not wait for it.
func PrepareNotify(p *oci.ProcessPlan, filter *seccomp.Program, listener func(fd int) error) (*Exec, error) {
	if filter != nil && filter.NeedsListener && listener == nil {
		return nil, fmt.Errorf("linux.seccomp: %s rules need the listener handed to the daemon: %w", "SCMP_ACT_NOTIFY", errdefs.ErrInvalidArgument)
	}
	if err := setRlimits(p.Rlimits); err != nil {
		return nil, err
	}
	if err := setOOMScoreAdj(p.OOMScoreAdj); err != nil {
		return nil, err
	}
	id, err := resolveUser(p)
	if err != nil {
		return nil, err
	}
	env := withHome(p.Env, id.Home)
	if p.User.Umask != nil {
		unix.Umask(int(*p.User.Umask))
	}
	if err := setExecLabels(p); err != nil {
		return nil, err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	inCwd, err := chdirAsRoot(p.Cwd)
	if err != nil {
		return nil, err
	}
	if err := setSchedAttrs(p); err != nil {
		return nil, err
	}
	if filter != nil && !p.NoNewPrivileges {
		// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load
		// it while the thread still has every capability. The rest of the
		// setup then runs under it, as it does with runc.
		if err := loadAndHandOff(filter, listener); err != nil {
			return nil, err
		}
		filter = nil
	}
	if err := dropBounding(p.Caps.Bounding); err != nil {
		return nil, err
	}
	if err := setIdentity(id); err != nil {
		return nil, err
	}
	if err := setCapabilities(p.Caps); err != nil {
		return nil, err
	}
	if err := enterCwd(p.Cwd, inCwd); err != nil {
		return nil, err
	}
	path, err := lookPath(p.Args[0], env)
	if err != nil {
		return nil, err
	}
	if filter != nil && filter.NeedsListener {
		// The daemon needs the listener before the stage reports ready, so
		// with no_new_privs the filter goes on here rather than in Run.
		if err := loadAndHandOff(filter, listener); err != nil {
			return nil, err
		}
		filter = nil
	}
	return &Exec{Path: path, Argv: p.Args, Env: env, filter: filter}, nil
}

// loadAndHandOff loads filter and, when it made a listener, passes the
// listener's number to listener.
func loadAndHandOff(filter *seccomp.Program, listener func(fd int) error) error {
	fd, err := loadSeccomp(filter)
	if err != nil || fd < 0 {
		return err
	}
	if err := listener(fd); err != nil {
		return fmt.Errorf("hand the seccomp listener to the daemon: %w", err)
	}
	return nil
}

// Run marks every file descriptor above stderr close-on-exec and execve's
// on the calling thread. It returns only on failure.
//
// Marking, not closing, keeps descriptors the Go runtime uses valid until
// the execve. Without it, a descriptor the runtime inherited or opened
// without O_CLOEXEC (a host directory, CVE-2024-21626) would reach the
// container's process.
//
// Preconditions: the thread that ran Prepare, still locked.
func (e *Exec) Run() error {
	if err := cloexecFDs(); err != nil {
		return err
	}
	if e.filter != nil {
		// With no_new_privs the filter goes on as late as possible, so
		// it constrains only the container's program.
		if _, err := loadSeccomp(e.filter); err != nil {
			return err
		}
	}
	err := unix.Exec(e.Path, e.Argv, e.Env)
	return execError(e.Argv[0], fmt.Errorf("execve %s: %w", e.Path, err))
}

// cloexecFDs is markCloexecFrom3, replaced by a test that shows what leaks
// without it.
var cloexecFDs = markCloexecFrom3

// MarkCloexecFrom3 sets FD_CLOEXEC on every descriptor >= 3 of the calling
// process, so that nothing it holds reaches a program it executes (the
// runtime calls it before forking OCI hooks).
func MarkCloexecFrom3() error { return markCloexecFrom3() }

// markCloexecFrom3 sets FD_CLOEXEC on every descriptor >= 3. Kernels before
// 5.11 lack CLOSE_RANGE_CLOEXEC; there it walks /proc/self/fd.
func markCloexecFrom3() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("mark descriptors close-on-exec: %w", err)
	}
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("mark descriptors close-on-exec: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("mark descriptors close-on-exec: %w", err)
	}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd < 3 || fd == int(d.Fd()) {
			continue
		}
		unix.CloseOnExec(fd)
	}
	return nil
}

// setRlimits uses syscall.Setrlimit, not unix.Setrlimit: only the former
// tells the Go runtime not to restore its saved RLIMIT_NOFILE at execve.
func setRlimits(rls []oci.Rlimit) error {
	for _, rl := range rls {
		if err := syscall.Setrlimit(rl.Resource, &syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fmt.Errorf("setrlimit %d (soft %d, hard %d): %w", rl.Resource, rl.Soft, rl.Hard, err)
		}
	}
	return nil
}

// resolveUser reads the current root's /etc/passwd and /etc/group.
func resolveUser(p *oci.ProcessPlan) (oci.Identity, error) {
	passwd, err := openUserFile("/etc/passwd")
	if err != nil {
		return oci.Identity{}, err
	}
	if passwd != nil {
		defer passwd.Close()
	}
	group, err := openUserFile("/etc/group")
	if err != nil {
		return oci.Identity{}, err
	}
	if group != nil {
		defer group.Close()
	}
	id, err := oci.ResolveUser(p.User, readerOf(passwd), readerOf(group))
	if err != nil {
		return oci.Identity{}, fmt.Errorf("resolve user %d: %w", p.User.UID, err)
	}
	return id, nil
}

// openUserFile opens a passwd-like file of the container, or returns nil
// when there is none. It refuses anything but a regular file: the image
// controls these files, and a FIFO would block the runtime.
func openUserFile(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file (%s): %w", path, st.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	return f, nil
}

// readerOf returns f as an io.Reader, or a nil interface (not a typed nil)
// when f is nil.
func readerOf(f *os.File) io.Reader {
	if f == nil {
		return nil
	}
	return f
}

// withHome returns env with HOME=home added when env has no HOME.
func withHome(env []string, home string) []string {
	for _, e := range env {
		if strings.HasPrefix(e, "HOME=") {
			return env
		}
	}
	return append(env[:len(env):len(env)], "HOME="+home)
}
