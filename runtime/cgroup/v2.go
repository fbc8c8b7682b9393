package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// v2Cgroup is a cgroup in the unified hierarchy. Its fields are set at creation and never
// change, and cgroup2.Manager keeps no state beyond its path, so v2Cgroup is safe for
// concurrent use.
type v2Cgroup struct {
	path string           // the cgroupsPath, as given
	dir  string           // /sys/fs/cgroup/<resolved path>
	m    *cgroup2.Manager // its manager

	mu sync.Mutex // serializes Update: its writes are read-modify-write and are undone together
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

// checkUnified refuses linux.resources.unified keys that are not a limit file of a v2
// controller (oci.CheckUnifiedKey), before anything is written. Whether the cgroup has the
// file is checked when the values are planned.
func checkUnified(unified map[string]string) error {
	for k := range unified {
		if err := oci.CheckUnifiedKey(k); err != nil {
			return fmt.Errorf("linux.resources.unified[%q]: %v: %w", k, err, errdefs.ErrInvalidArgument)
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
	m, err := cgroup2.NewManager(cgroupRoot, p, &cgroup2.Resources{})
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", cgroupsPath, classify(err))
	}
	enableControllers(dir)
	c := &v2Cgroup{path: cgroupsPath, dir: dir, m: m}
	if err := c.set(res, false); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", cgroupsPath, err)
	}
	return c, nil
}

// enableControllers enables, in every ancestor of dir below the root, each controller the
// ancestor has, so that dir gets every controller's files (as runc does). A controller that
// cannot be enabled is left out: a value that needs it is then refused when it is planned,
// naming the field.
func enableControllers(dir string) {
	var ancestors []string
	for d := filepath.Dir(dir); len(d) >= len(cgroupRoot); d = filepath.Dir(d) {
		ancestors = append(ancestors, d)
		if d == cgroupRoot {
			break
		}
	}
	slices.Reverse(ancestors)
	for _, a := range ancestors {
		have, _ := os.ReadFile(filepath.Join(a, "cgroup.controllers"))
		on, _ := os.ReadFile(filepath.Join(a, "cgroup.subtree_control"))
		for _, ctl := range strings.Fields(string(have)) {
			if !slices.Contains(strings.Fields(string(on)), ctl) {
				os.WriteFile(filepath.Join(a, "cgroup.subtree_control"), []byte("+"+ctl), 0)
			}
		}
	}
}

// files reads and writes the cgroup's control files.
func (c *v2Cgroup) files() dirReader {
	return func(string) string { return c.dir }
}

// set applies res: its values are planned (and refused if this cgroup cannot apply them)
// before anything is written; then the files are written and the device filter replaced. If
// a write or the filter fails, the files written are restored. update says whether the
// cgroup may hold processes (Update), whose memory a lower limit must fit.
func (c *v2Cgroup) set(res *specs.LinuxResources, update bool) error {
	if err := checkUnified(res.Unified); err != nil {
		return err
	}
	fs := c.files()
	if update {
		if err := checkBeforeUpdate(res, fs, "", "memory.current"); err != nil {
			return err
		}
	}
	settings, err := planV2(res, fs)
	if err != nil {
		return err
	}
	if update {
		if err := fitMemoryV2(res, fs); err != nil {
			return err
		}
	}
	undo, err := apply(fs, settings)
	if err != nil {
		return err
	}
	if err := setDevicesV2(c.dir, res.Devices); err != nil {
		if uerr := undo(); uerr != nil {
			err = errors.Join(err, fmt.Errorf("restore the values written: %w", uerr))
		}
		return err
	}
	return nil
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.exists() {
		return errDeleted(c.path)
	}
	if err := c.set(r, true); err != nil {
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
