package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v2Cgroup is a cgroup in the unified hierarchy. Its fields are set at creation and never
// change, and cgroup2.Manager keeps no state beyond its path, so v2Cgroup is safe for
// concurrent use.
type v2Cgroup struct {
	path string           // the cgroupsPath, as given
	dir  string           // /sys/fs/cgroup/<resolved path>
	m    *cgroup2.Manager // its manager
}

// v2Resources is what New and Update apply on v2: cgroup2.ToResources drops the device
// rules, so they are copied over.
func v2Resources(res *specs.LinuxResources) *cgroup2.Resources {
	r := cgroup2.ToResources(res)
	r.Devices = normalizeDevices(res.Devices)
	return r
}

// wildcard is a device rule's "any major/minor".
const wildcard = -1

// normalizeDevices spells out what the OCI spec leaves implicit in a device
// rule: no type means all ("a"), no major or minor means any. The v2 eBPF
// filter builder reads them unconditionally (containerd's default spec
// starts with {"allow": false, "access": "rwm"}, which has neither).
func normalizeDevices(rules []specs.LinuxDeviceCgroup) []specs.LinuxDeviceCgroup {
	if rules == nil {
		return nil
	}
	out := make([]specs.LinuxDeviceCgroup, len(rules))
	for i, d := range rules {
		if d.Type == "" {
			d.Type = "a"
		}
		if d.Major == nil {
			m := int64(wildcard)
			d.Major = &m
		}
		if d.Minor == nil {
			m := int64(wildcard)
			d.Minor = &m
		}
		out[i] = d
	}
	return out
}

// checkUnified refuses linux.resources.unified keys that are not a plain file name in the
// cgroup directory. Values are written as given; the kernel judges them.
func checkUnified(unified map[string]string) error {
	for k := range unified {
		if k == "" || k == "." || k == ".." || strings.Contains(k, "/") || !strings.Contains(k, ".") {
			return fmt.Errorf("linux.resources.unified: key %q is not a cgroup file name: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func writeUnified(dir string, unified map[string]string) error {
	for k, v := range unified {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0); err != nil {
			if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ERANGE) || errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("linux.resources.unified[%q]: %w: %w", k, errdefs.ErrInvalidArgument, err)
			}
			return fmt.Errorf("linux.resources.unified[%q]: %w", k, err)
		}
	}
	return nil
}

func newV2(cgroupsPath, p string, res *specs.LinuxResources) (_ *v2Cgroup, retErr error) {
	if err := checkUnified(res.Unified); err != nil {
		return nil, err
	}
	dir := filepath.Join(cgroupRoot, p)
	created := missingDirs(cgroupRoot, dir)
	defer func() {
		if retErr != nil {
			if err := rmdirAll(created); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("roll back: %w", err))
			}
		}
	}()
	m, err := cgroup2.NewManager(cgroupRoot, p, v2Resources(res))
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", cgroupsPath, classify(err))
	}
	if err := writeUnified(dir, res.Unified); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", cgroupsPath, err)
	}
	return &v2Cgroup{path: cgroupsPath, dir: dir, m: m}, nil
}

func loadV2(cgroupsPath, p string) (*v2Cgroup, error) {
	dir := filepath.Join(cgroupRoot, p)
	if _, err := os.Lstat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errDeleted(cgroupsPath)
		}
		return nil, fmt.Errorf("load cgroup %s: %w", cgroupsPath, err)
	}
	m, err := cgroup2.Load(p)
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", cgroupsPath, err)
	}
	return &v2Cgroup{path: cgroupsPath, dir: dir, m: m}, nil
}

func (c *v2Cgroup) Path() string { return c.path }

// CloneFD opens the directory with O_PATH: clone3 takes the cgroup fd with fget_raw, so a
// path-only fd is enough and needs no read permission.
func (c *v2Cgroup) CloneFD() (int, bool, error) {
	fd, err := unix.Open(c.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false, fmt.Errorf("open cgroup %s: %w", c.path, c.classifyErr(&os.PathError{Op: "open", Path: c.dir, Err: err}))
	}
	return fd, true, nil
}

func (c *v2Cgroup) Add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("add pid %d: %w", pid, errdefs.ErrInvalidArgument)
	}
	if err := c.m.AddProc(uint64(pid)); err != nil {
		return fmt.Errorf("add pid %d to cgroup %s: %w", pid, c.path, c.classifyErr(err))
	}
	return nil
}

func (c *v2Cgroup) Pids() ([]int, error) {
	if !c.exists() {
		return nil, errDeleted(c.path)
	}
	pids, err := readProcsTree(c.dir)
	if err != nil {
		return nil, fmt.Errorf("list pids of cgroup %s: %w", c.path, err)
	}
	return union(pids), nil
}

// Kill with SIGKILL writes cgroup.kill (kernel >= 5.14), which kills every process in the
// subtree, including ones forking meanwhile. cgroup2.Manager.Kill is not used: its fallback
// waits for the killed processes, which would steal their exit status from the shim's reaper.
func (c *v2Cgroup) Kill(sig syscall.Signal) error {
	if sig == unix.SIGKILL {
		err := os.WriteFile(filepath.Join(c.dir, "cgroup.kill"), []byte("1"), 0)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("kill cgroup %s: %w", c.path, err)
		}
		if !c.exists() {
			return errDeleted(c.path)
		}
	}
	if err := signalAll(c.Pids, sig); err != nil {
		return fmt.Errorf("kill cgroup %s: %w", c.path, err)
	}
	return nil
}

func (c *v2Cgroup) Freeze() error {
	if err := c.m.Freeze(); err != nil {
		return fmt.Errorf("freeze cgroup %s: %w", c.path, c.classifyErr(err))
	}
	return nil
}

func (c *v2Cgroup) Thaw() error {
	if err := c.m.Thaw(); err != nil {
		return fmt.Errorf("thaw cgroup %s: %w", c.path, c.classifyErr(err))
	}
	return nil
}

func (c *v2Cgroup) Update(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if err := checkUnified(r.Unified); err != nil {
		return err
	}
	if err := c.m.Update(v2Resources(r)); err != nil {
		return fmt.Errorf("update cgroup %s: %w", c.path, c.classifyErr(err))
	}
	if err := writeUnified(c.dir, r.Unified); err != nil {
		return fmt.Errorf("update cgroup %s: %w", c.path, err)
	}
	return nil
}

func (c *v2Cgroup) Stats() (any, error) {
	if !c.exists() {
		return nil, errDeleted(c.path)
	}
	m, err := c.m.Stat()
	if err != nil {
		return nil, fmt.Errorf("stats of cgroup %s: %w", c.path, c.classifyErr(err))
	}
	return m, nil
}

func (c *v2Cgroup) Delete() error {
	pids, err := c.Pids()
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete cgroup %s: %w", c.path, err)
	}
	if len(pids) > 0 {
		return fmt.Errorf("delete cgroup %s: %d processes remain: %w", c.path, len(pids), errdefs.ErrFailedPrecondition)
	}
	if err := removeTree(c.dir); err != nil {
		return fmt.Errorf("delete cgroup %s: %w", c.path, err)
	}
	return nil
}

func (c *v2Cgroup) exists() bool {
	_, err := os.Lstat(c.dir)
	return err == nil
}

// classifyErr adds an errdefs class: a deleted cgroup is ErrNotFound, a gone process
// ErrNotFound, a refused value ErrInvalidArgument.
func (c *v2Cgroup) classifyErr(err error) error {
	switch {
	case errors.Is(err, syscall.ESRCH):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case errors.Is(err, os.ErrNotExist) && !c.exists():
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	}
	return classify(err)
}
