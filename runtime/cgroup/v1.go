package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// v1Cgroup is a cgroup in the v1 controller hierarchies. Its fields are set at creation and
// never change; cg serializes its own operations, so v1Cgroup is safe for concurrent use.
type v1Cgroup struct {
	path string            // the cgroupsPath, as given
	cg   cgroup1.Cgroup    // the hierarchies the cgroup exists in
	dirs []string          // the cgroup's directory in each of those hierarchies
	ctls map[string]string // controller name ("memory") -> the cgroup's directory in it
	devs bool              // the devices controller is among them

	mu sync.Mutex // serializes Update: its writes are read-modify-write and are undone together
}

// newV1Cgroup describes the cgroup at p in the hierarchies subs.
func newV1Cgroup(cgroupsPath, p string, cg cgroup1.Cgroup, subs []cgroup1.Subsystem) *v1Cgroup {
	ctls := make(map[string]string, len(subs))
	for _, s := range subs {
		ctls[string(s.Name())] = s.(pather).Path(p)
	}
	return &v1Cgroup{path: cgroupsPath, cg: cg, dirs: dirsOf(subs, p), ctls: ctls, devs: hasDevices(subs)}
}

// files reads and writes the cgroup's control files, each in its controller's directory.
func (c *v1Cgroup) files() dirReader {
	return func(ctl string) string { return c.ctls[ctl] }
}

// set applies res: its values are planned (and refused if this host cannot apply them)
// before anything is written, and on a failed write the earlier ones are undone.
func (c *v1Cgroup) set(res *specs.LinuxResources) error {
	if err := checkV1(res, c.devs); err != nil {
		return err
	}
	if err := checkBeforeUpdate(res, c.files(), "memory", "memory.usage_in_bytes"); err != nil {
		return err
	}
	settings, err := planV1(res, c.files())
	if err != nil {
		return err
	}
	_, err = apply(c.files(), settings)
	return err
}

// pather is implemented by every cgroup1 subsystem that has a directory.
type pather interface {
	Path(p string) string
}

// controllers keeps the subsystems that are kernel controllers, dropping named hierarchies
// such as name=systemd (which cgroup1.Default includes when /sys/fs/cgroup/systemd exists):
// those belong to the init system, and a container needs none of them.
func controllers(subs []cgroup1.Subsystem) []cgroup1.Subsystem {
	known := append(cgroup1.Subsystems(), cgroup1.Devices, cgroup1.Hugetlb)
	var out []cgroup1.Subsystem
	for _, s := range subs {
		if _, ok := s.(pather); ok && slices.Contains(known, s.Name()) {
			out = append(out, s)
		}
	}
	return out
}

// v1Hierarchy lists the controllers mounted on this host. cgroup1.Default already drops the
// ones whose /sys/fs/cgroup/<name> does not exist (hugetlb, net_cls, perf_event, rdma on a
// host without them), and gives each controller its own directory, so controllers mounted
// separately (cpu and cpuacct here) and co-mounted ones (a cpu,cpuacct mount with cpu and
// cpuacct symlinks) both work.
func v1Hierarchy() ([]cgroup1.Subsystem, error) {
	subs, err := cgroup1.Default()
	if err != nil {
		return nil, fmt.Errorf("list cgroup v1 hierarchies: %w", err)
	}
	return controllers(subs), nil
}

func hasDevices(subs []cgroup1.Subsystem) bool {
	return slices.ContainsFunc(subs, func(s cgroup1.Subsystem) bool { return s.Name() == cgroup1.Devices })
}

func dirsOf(subs []cgroup1.Subsystem, p string) []string {
	var out []string
	for _, s := range subs {
		out = append(out, s.(pather).Path(p))
	}
	return out
}

// checkV1 refuses resources this host cannot enforce on v1.
func checkV1(res *specs.LinuxResources, devices bool) error {
	if len(res.Unified) > 0 {
		return fmt.Errorf("linux.resources.unified needs cgroup v2: %w", errdefs.ErrInvalidArgument)
	}
	if len(res.Devices) > 0 && !devices {
		return fmt.Errorf("linux.resources.devices: devices controller is not mounted: %w", errdefs.ErrNotImplemented)
	}
	return nil
}

func newV1(cgroupsPath, p string, res *specs.LinuxResources) (_ *v1Cgroup, retErr error) {
	subs, err := v1Hierarchy()
	if err != nil {
		return nil, err
	}
	if err := checkV1(res, hasDevices(subs)); err != nil {
		return nil, err
	}
	var created []string
	for _, s := range subs {
		created = append(created, missingDirs(s.(pather).Path("/"), s.(pather).Path(p))...)
	}
	defer func() {
		if retErr != nil {
			if err := rmdirAll(created); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("roll back: %w", err))
			}
		}
	}()
	hierarchy := func() ([]cgroup1.Subsystem, error) { return subs, nil }
	// cgroup1 creates the directories (and copies cpuset.cpus and cpuset.mems from the
	// parent, which a v1 cpuset needs before it can hold a task); set writes the values.
	cg, err := cgroup1.New(cgroup1.StaticPath(p), &specs.LinuxResources{}, cgroup1.WithHierarchy(hierarchy))
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", cgroupsPath, classify(err))
	}
	c := newV1Cgroup(cgroupsPath, p, cg, subs)
	if err := c.set(res); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", cgroupsPath, err)
	}
	return c, nil
}

func loadV1(cgroupsPath, p string) (*v1Cgroup, error) {
	subs, err := v1Hierarchy()
	if err != nil {
		return nil, err
	}
	hierarchy := func() ([]cgroup1.Subsystem, error) { return subs, nil }
	cg, err := cgroup1.Load(cgroup1.StaticPath(p), cgroup1.WithHierarchy(hierarchy))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, errDeleted(cgroupsPath)
	}
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", cgroupsPath, err)
	}
	// Load keeps the hierarchies the cgroup exists in.
	return newV1Cgroup(cgroupsPath, p, cg, cg.Subsystems()), nil
}

func (c *v1Cgroup) Path() string { return c.path }

func (c *v1Cgroup) CloneFD() (int, bool, error) { return -1, false, nil }

var _ SelfJoiner = (*v1Cgroup)(nil)

func (c *v1Cgroup) TaskFiles() ([]*os.File, error) {
	var fs []*os.File
	for _, d := range c.dirs {
		// Opened plainly: only the stage writes to them, so the daemon's
		// netpoller need not know them.
		name := filepath.Join(d, "tasks")
		fd, err := syscall.Open(name, syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			for _, f := range fs {
				f.Close()
			}
			err = &os.PathError{Op: "open", Path: name, Err: err}
			return nil, fmt.Errorf("open tasks of cgroup %s: %w", c.path, c.classifyErr(err))
		}
		fs = append(fs, os.NewFile(uintptr(fd), name))
	}
	return fs, nil
}

func (c *v1Cgroup) Add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("add pid %d: %w", pid, errdefs.ErrInvalidArgument)
	}
	if err := c.cg.AddProc(uint64(pid)); err != nil {
		return fmt.Errorf("add pid %d to cgroup %s: %w", pid, c.path, c.classifyErr(err))
	}
	return nil
}

// Pids unions cgroup.procs over all hierarchies: after a partial Add a process can be in
// some of them only, and Kill and Delete must still see it.
func (c *v1Cgroup) Pids() ([]int, error) {
	var lists [][]int
	exists := false
	for _, d := range c.dirs {
		if _, err := os.Lstat(d); err != nil {
			continue
		}
		exists = true
		pids, err := readProcsTree(d)
		if err != nil {
			return nil, fmt.Errorf("list pids of cgroup %s: %w", c.path, err)
		}
		lists = append(lists, pids)
	}
	if !exists {
		return nil, errDeleted(c.path)
	}
	return union(lists...), nil
}

// Kill signals the listed processes. A v1-frozen process does not act on SIGKILL until it is
// thawed (it sits in D state), so after SIGKILL a frozen cgroup is thawed, as runc does; the
// processes then die instead of lingering as paused.
func (c *v1Cgroup) Kill(sig syscall.Signal) error {
	if err := signalAll(c.Pids, sig); err != nil {
		return fmt.Errorf("kill cgroup %s: %w", c.path, err)
	}
	if sig == syscall.SIGKILL && c.cg.State() == cgroup1.Frozen {
		if err := c.cg.Thaw(); err != nil {
			return fmt.Errorf("kill cgroup %s: thaw: %w", c.path, c.classifyErr(err))
		}
	}
	return nil
}

func (c *v1Cgroup) Freeze() error {
	if err := c.cg.Freeze(); err != nil {
		return fmt.Errorf("freeze cgroup %s: %w", c.path, c.classifyErr(err))
	}
	return nil
}

func (c *v1Cgroup) Thaw() error {
	if err := c.cg.Thaw(); err != nil {
		return fmt.Errorf("thaw cgroup %s: %w", c.path, c.classifyErr(err))
	}
	return nil
}

func (c *v1Cgroup) Update(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.exists() {
		return errDeleted(c.path)
	}
	if err := c.set(r); err != nil {
		return fmt.Errorf("update cgroup %s: %w", c.path, err)
	}
	return nil
}

// Stats skips statistics files this kernel does not have (v1 blkio lost most of its files
// with CFQ), but not a deleted cgroup.
func (c *v1Cgroup) Stats() (any, error) {
	m, err := c.cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return nil, fmt.Errorf("stats of cgroup %s: %w", c.path, c.classifyErr(err))
	}
	if !c.exists() {
		return nil, errDeleted(c.path)
	}
	return m, nil
}

func (c *v1Cgroup) Delete() error {
	// The common case, a cgroup without processes or cgroups below it, needs one rmdir per
	// hierarchy: the kernel refuses (EBUSY) to remove one that still has either, and then
	// the rest goes the careful way. What was removed before held nothing.
	if c.rmdirEmpty() {
		return nil
	}
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
	var errs []error
	for _, d := range c.dirs {
		if err := removeTree(d); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete cgroup %s: %w", c.path, err)
	}
	return nil
}

// rmdirEmpty removes the cgroup's directories while the kernel lets it, and reports whether
// all are gone.
func (c *v1Cgroup) rmdirEmpty() bool {
	for _, d := range c.dirs {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
			return false
		}
	}
	return true
}

func (c *v1Cgroup) exists() bool {
	return slices.ContainsFunc(c.dirs, func(d string) bool {
		_, err := os.Lstat(d)
		return err == nil
	})
}

// classifyErr adds an errdefs class to errors from cgroup1: a deleted cgroup is
// ErrNotFound, a missing freezer ErrNotImplemented, a refused value ErrInvalidArgument.
func (c *v1Cgroup) classifyErr(err error) error {
	switch {
	case errors.Is(err, cgroup1.ErrCgroupDeleted):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case errors.Is(err, cgroup1.ErrFreezerNotSupported):
		return fmt.Errorf("%w: %w", errdefs.ErrNotImplemented, err)
	case errors.Is(err, syscall.ESRCH):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case errors.Is(err, os.ErrNotExist) && !c.exists():
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	}
	return classify(err)
}
