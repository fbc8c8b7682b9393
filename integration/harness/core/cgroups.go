package core

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CgroupRoots are the hierarchies mounted under /sys/fs/cgroup (v1 controllers and, on a
// hybrid host, the unified one), or /sys/fs/cgroup itself when it is a pure cgroup2 mount
// (the cgroup v2 VM). The process_api directory is never included, so nothing in this package
// looks below it.
func CgroupRoots() []string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return []string{"/sys/fs/cgroup"}
	}
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	var roots []string
	for _, e := range ents {
		if e.Name() == "process_api" {
			continue
		}
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			roots = append(roots, p)
		}
	}
	return roots
}

// CgroupDirs lists the hierarchies' directories in which the cgroup path exists.
func CgroupDirs(path string) []string {
	var dirs []string
	for _, root := range CgroupRoots() {
		p := filepath.Join(root, path)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			dirs = append(dirs, p)
		}
	}
	return dirs
}

// RemoveCgroup rmdirs path and its children in every hierarchy, deepest first; it only ever
// rmdirs, and retries for 5 s while the kernel still counts exiting tasks. path must start
// with ownedPrefix (a cgroup the caller created, e.g. "/box-test-"): anything else is refused.
func RemoveCgroup(path, ownedPrefix string) error {
	if ownedPrefix == "" || !strings.HasPrefix(path, ownedPrefix) {
		return fmt.Errorf("refusing to remove cgroup %s (not under %s*)", path, ownedPrefix)
	}
	var errs []error
	for _, root := range CgroupRoots() {
		var dirs []string
		filepath.WalkDir(filepath.Join(root, path), func(p string, d os.DirEntry, err error) error {
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
