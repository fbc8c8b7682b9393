package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
)

// missingDirs returns dir and those of its ancestors below root that do not exist yet,
// deepest first: the directories a MkdirAll(dir) would create, in the order to remove them.
func missingDirs(root, dir string) []string {
	var out []string
	for d := dir; d != root && len(d) > len(root); d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		out = append(out, d)
	}
	return out
}

// rmdirAll removes, best effort, each directory in dirs (deepest first, as missingDirs
// returns them) with rmdir, never unlinking a file. A directory that is already gone, or
// that another cgroup is using, is skipped.
func rmdirAll(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		err := syscall.Rmdir(d)
		if err == nil || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.ENOTEMPTY) {
			continue
		}
		errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
	}
	return errors.Join(errs...)
}

// removeTree removes the cgroup directory dir and every cgroup below it, children first, with
// rmdir only (cgroupfs control files cannot be unlinked and need not be). A dir that does not
// exist is not an error. The kernel refuses to remove a cgroup with tasks (EBUSY); a
// just-killed task can keep it busy for a moment, so EBUSY is retried a few times before it is
// reported wrapped in errdefs.ErrFailedPrecondition.
func removeTree(dir string) error {
	dirs, err := subdirs(dir)
	if err != nil {
		return err
	}
	slices.Reverse(dirs) // children after parents in walk order; remove them first
	for _, d := range dirs {
		if err := rmdirRetry(d); err != nil {
			return err
		}
	}
	return nil
}

func rmdirRetry(d string) error {
	delay := 10 * time.Millisecond
	var err error
	for range 6 {
		err = syscall.Rmdir(d)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(delay)
		delay *= 2
	}
	if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.ENOTEMPTY) {
		return fmt.Errorf("rmdir %s: cgroup still has processes: %w: %w", d, errdefs.ErrFailedPrecondition, err)
	}
	return fmt.Errorf("rmdir %s: %w", d, err)
}

// subdirs lists dir and every directory below it in walk order (parents before children).
// A tree that vanishes while it is walked yields what was seen; a missing dir yields nothing.
func subdirs(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// readProcsTree returns the pids listed in cgroup.procs of dir and of every cgroup below it.
// A missing dir yields no pids and no error; callers decide whether that means "not found".
func readProcsTree(dir string) ([]int, error) {
	dirs, err := subdirs(dir)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, d := range dirs {
		ps, err := readProcs(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		pids = append(pids, ps...)
	}
	return pids, nil
}

func readProcs(file string) ([]int, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pids []int
	s := bufio.NewScanner(f)
	for s.Scan() {
		if s.Text() == "" {
			continue
		}
		pid, err := strconv.Atoi(s.Text())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		pids = append(pids, pid)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return pids, nil
}

// union returns the distinct pids of lists, sorted.
func union(lists ...[]int) []int {
	var out []int
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
