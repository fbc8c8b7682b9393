package harness

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cleanup stops the daemon and removes everything this harness made. It is idempotent and best
// effort: every step runs, failures are reported together.
//
// Order: print the log if the test failed; stop containerd (SIGTERM, SIGKILL after 10 s); kill
// the shims it started; kill processes left in CgroupParent; unmount everything under Dir;
// rmdir CgroupParent in every hierarchy; remove Dir.
func (c *Containerd) cleanup(t testing.TB) {
	if t.Failed() || os.Getenv("BOX_TEST_LOG") != "" {
		t.Logf("containerd %s log (%s):\n%s", c.Version, c.logPath, c.Log())
	}
	if c.Client != nil {
		c.Client.Close()
	}
	var errs []error
	errs = append(errs, c.stop())
	for _, pid := range c.shimPids("") {
		errs = append(errs, killWait(pid))
	}
	errs = append(errs, killCgroupProcs(c.CgroupParent))
	errs = append(errs, unmountUnder(c.Dir))
	errs = append(errs, removeCgroup(c.CgroupParent))
	errs = append(errs, os.RemoveAll(c.Dir))
	if err := errors.Join(errs...); err != nil {
		t.Errorf("harness cleanup: %v", err)
	}
}

// stop sends SIGTERM to the daemon by pid and SIGKILL after 10 s.
func (c *Containerd) stop() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	select {
	case <-c.exited:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.exited:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("containerd did not die after SIGKILL")
	}
}

// shimPids lists live shim processes (box or runc peer) that belong to this containerd: their
// command line, environment or working directory mentions Dir. With id != "", only the shim
// whose command line carries "-id <id>" or whose working directory is id's bundle.
func (c *Containerd) shimPids(id string) []int {
	var pids []int
	for _, pid := range allPids() {
		argv := cmdline(pid)
		if len(argv) == 0 || !strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim-") {
			continue
		}
		cwd, _ := os.Readlink(procPath(pid, "cwd"))
		env, _ := os.ReadFile(procPath(pid, "environ"))
		ours := strings.Contains(strings.Join(argv, " "), c.Dir) ||
			strings.HasPrefix(cwd, c.Dir+"/") || strings.Contains(string(env), c.Dir+"/")
		if !ours {
			continue
		}
		if id != "" && !argHas(argv, "-id", id) && filepath.Base(cwd) != id {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func argHas(argv []string, flag, val string) bool {
	for i := 0; i+1 < len(argv); i++ {
		if (argv[i] == flag || argv[i] == "-"+flag) && argv[i+1] == val {
			return true
		}
		if argv[i] == flag+"="+val {
			return true
		}
	}
	return false
}

func procPath(pid int, name string) string {
	return filepath.Join("/proc", itoa(pid), name)
}

func itoa(i int) string { return strconv.Itoa(i) }

// allPids lists the numeric entries of /proc.
func allPids() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		n := 0
		ok := e.Name() != ""
		for _, r := range e.Name() {
			if r < '0' || r > '9' {
				ok = false
				break
			}
			n = n*10 + int(r-'0')
		}
		if ok {
			pids = append(pids, n)
		}
	}
	return pids
}

// cmdline returns the argv of pid, or nil if it is gone or a kernel thread.
func cmdline(pid int) []string {
	b, err := os.ReadFile(procPath(pid, "cmdline"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// killWait SIGKILLs pid through a pidfd (so a recycled pid is never hit) and waits up to 10 s
// for it to exit.
func killWait(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	if !waitPidfd(fd, 10*time.Second) {
		return errors.New("pid " + itoa(pid) + " survived SIGKILL")
	}
	return nil
}

// waitPidfd waits until the process behind fd has exited.
func waitPidfd(fd int, timeout time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			return false
		}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// WaitExit waits up to timeout for pid to exit; true if it is gone.
func WaitExit(pid int, timeout time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return errors.Is(err, unix.ESRCH)
	}
	defer unix.Close(fd)
	return waitPidfd(fd, timeout)
}

// killCgroupProcs SIGKILLs every process whose cgroup (any hierarchy) is at or below parent.
func killCgroupProcs(parent string) error {
	var errs []error
	for _, pid := range ProcessesInCgroup(parent) {
		errs = append(errs, killWait(pid))
	}
	return errors.Join(errs...)
}

// unmountUnder lazily unmounts every mount point at or below dir, deepest first.
func unmountUnder(dir string) error {
	var mps []string
	for _, m := range mountinfo() {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			mps = append(mps, m.point)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	var errs []error
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, &os.PathError{Op: "umount", Path: mp, Err: err})
		}
	}
	return errors.Join(errs...)
}

// cgroupRoots are the v1 hierarchies (and the hybrid cgroup2) mounted under /sys/fs/cgroup.
func cgroupRoots() []string {
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	var roots []string
	for _, e := range ents {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			roots = append(roots, p)
		}
	}
	return roots
}

// removeCgroup rmdirs path (a cgroup the harness owns, "/box-test-...") and its children in
// every hierarchy, deepest first; it only ever rmdirs, and retries while the kernel still
// counts exiting tasks.
func removeCgroup(path string) error {
	if !strings.HasPrefix(path, "/box-test-") {
		return errors.New("refusing to remove cgroup " + path)
	}
	var errs []error
	for _, root := range cgroupRoots() {
		top := filepath.Join(root, path)
		var dirs []string
		filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			errs = append(errs, rmdirRetry(d))
		}
	}
	return errors.Join(errs...)
}

func rmdirRetry(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return &os.PathError{Op: "rmdir", Path: dir, Err: err}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
