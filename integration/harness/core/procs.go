package core

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ProcPath is /proc/<pid>/<name>.
func ProcPath(pid int, name string) string {
	return filepath.Join("/proc", strconv.Itoa(pid), name)
}

// AllPids lists the numeric entries of /proc.
func AllPids() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 0 {
			pids = append(pids, n)
		}
	}
	return pids
}

// Cmdline returns the argv of pid, or nil if it is gone or a kernel thread.
func Cmdline(pid int) []string {
	b, err := os.ReadFile(ProcPath(pid, "cmdline"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// Shim is a live shim process found by ShimPids.
type Shim struct {
	Pid  int
	Argv []string
	Cwd  string // working directory (containerd starts a shim in its bundle)
}

// ShimPids lists the live shim processes that belong to the containerd whose private
// directory is dir: argv[0]'s base name starts with "containerd-shim-" or is one of names,
// and the command line, environment or working directory mentions dir.
func ShimPids(dir string, names ...string) []Shim {
	var shims []Shim
	for _, pid := range AllPids() {
		argv := Cmdline(pid)
		if len(argv) == 0 || !isShim(filepath.Base(argv[0]), names) {
			continue
		}
		cwd, _ := os.Readlink(ProcPath(pid, "cwd"))
		env, _ := os.ReadFile(ProcPath(pid, "environ"))
		ours := strings.Contains(strings.Join(argv, " "), dir) ||
			strings.HasPrefix(cwd, dir+"/") || strings.Contains(string(env), dir+"/")
		if ours {
			shims = append(shims, Shim{Pid: pid, Argv: argv, Cwd: cwd})
		}
	}
	return shims
}

func isShim(base string, names []string) bool {
	if strings.HasPrefix(base, "containerd-shim-") {
		return true
	}
	for _, n := range names {
		if base == n {
			return true
		}
	}
	return false
}

// KillWait SIGKILLs pid through a pidfd (so a recycled pid is never hit) and waits up to 10 s
// for it to exit. A pid that is already gone is not an error.
func KillWait(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	if !waitPidfd(fd, 10*time.Second) {
		return fmt.Errorf("pid %d survived SIGKILL", pid)
	}
	return nil
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

// ProcessesInCgroup lists pids whose cgroup, in any hierarchy, is path or below it.
func ProcessesInCgroup(path string) []int {
	var pids []int
	for _, pid := range AllPids() {
		b, err := os.ReadFile(ProcPath(pid, "cgroup"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			// hierarchy-ID:controllers:path
			parts := strings.SplitN(line, ":", 3)
			if len(parts) == 3 && (parts[2] == path || strings.HasPrefix(parts[2], path+"/")) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// KillCgroupProcs SIGKILLs (KillWait) every process whose cgroup, in any hierarchy, is at or
// below parent.
func KillCgroupProcs(parent string) error {
	var errs []error
	for _, pid := range ProcessesInCgroup(parent) {
		errs = append(errs, KillWait(pid))
	}
	return errors.Join(errs...)
}
