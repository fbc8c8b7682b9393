package cgroup

// The systemd cgroup driver (runtime option SystemdCgroup), on cgroup v2.
//
// A container's cgroup is the transient scope unit "<prefix>-<name>.scope" in the slice of its
// cgroupsPath "slice:prefix:name" (see parseSystemdPath), started over D-Bus with
// StartTransientUnit, Delegate=yes (box owns the cgroup's files and anything below it) and the
// unit properties systemdProperties derives from linux.resources. Every resource is then also
// written directly through the cgroupfs v2 path (newV2 on the scope's directory), as runc does:
// systemd has no property for some (hugetlb, rdma, io.max, devices, most unified keys), and the
// direct writes are what the container runs under from the first instruction on. Freeze, Kill,
// Stats, Pids and execs (CLONE_INTO_CGROUP) work on the scope's directory like any v2 cgroup.
// Delete stops the unit (systemd then removes the cgroup) and resets it if it failed, so the
// name can be used again.
//
// Why the init stage is not born in the scope: on v2 box spawns a container's init stage with
// CLONE_INTO_CGROUP, but a scope cannot exist without a process (systemd refuses an empty
// scope: "Scope has no PIDs"). So the cgroup New returns is pending: CloneFD reports no fd, the
// runtime spawns the init stage in the daemon's cgroup and calls Add(pid), exactly as on v1,
// and Add starts the scope with PIDs=[pid] and writes the limits. The init stage is blocked on
// its sync socket until then, so nothing the container runs, and nothing it configures, happens
// outside the scope; only the stage's own start-up (the Go runtime, a few hundred KiB) is
// charged to the daemon's cgroup. Execs are born in the scope with CLONE_INTO_CGROUP.
//
// The D-Bus connection is made per operation (New's Add, Update, Delete), to systemd's private
// socket /run/systemd/private (root only, needs no dbus-daemon), or the system bus if that
// fails; a daemon that never uses the driver never connects and keeps no state for it.
// cgroup v1 hosts are refused: systemd 256 and later no longer run on v1, and box's v1 path has
// no equivalent of runc's per-controller joining of systemd's v1 hierarchies.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// systemdBooted is the directory that exists when systemd is the init system (sd_booted(3)).
var systemdBooted = "/run/systemd/system"

// skipResourceProperties is a test hook (the negative control of
// TestSystemdReappliedSettingsKeepLimits): the scope is started without the properties
// systemdProperties derives, the limits are only written as files.
var skipResourceProperties = false

// systemdTimeout bounds each conversation with systemd (a start or stop job included).
const systemdTimeout = 30 * time.Second

// systemdCgroup is a container's cgroup under the systemd driver. The scope is started once,
// by the first Add; v2 is the scope's cgroup from then on.
type systemdCgroup struct {
	path string      // the cgroupsPath, as given
	sp   systemdPath // its parts
	dir  string      // /sys/fs/cgroup/<sp.Dir>

	mu  sync.Mutex            // serializes starting the scope
	res *specs.LinuxResources // applied when the scope starts
	v2  atomic.Pointer[v2Cgroup]
}

// NewSystemd is New for the systemd cgroup driver (New calls it for a path of that form):
// cgroupsPath must be "slice:prefix:name"
// (errors are *oci.FieldError for linux.cgroupsPath) and res is validated now, but the scope is
// started, with its limits, by the first Add (see the package's systemd notes: CloneFD reports
// no fd until then). It fails with errdefs.ErrNotImplemented on a cgroup v1 host and with
// errdefs.ErrFailedPrecondition when systemd is not the init system.
func NewSystemd(cgroupsPath string, res *specs.LinuxResources) (Cgroup, error) {
	sp, err := parseSystemdPath(cgroupsPath)
	if err != nil {
		return nil, err
	}
	if res == nil {
		res = &specs.LinuxResources{}
	}
	if err := checkUnified(res.Unified); err != nil {
		return nil, err
	}
	if _, err := systemdProperties(res); err != nil {
		return nil, err
	}
	if err := systemdUsable(); err != nil {
		return nil, err
	}
	return &systemdCgroup{path: cgroupsPath, sp: sp, dir: filepath.Join(cgroupRoot, sp.Dir), res: res}, nil
}

// CheckDriver checks that cgroupsPath is one the driver the runtime option SystemdCgroup
// selects can take, as runc does with --systemd-cgroup: with systemd, exactly
// "slice:prefix:name" (strictly, see parseSystemdPath); without it, not that form (New and Load
// pick the driver by the path's form, so a systemd-form path without the option would silently
// switch drivers). Errors are *oci.FieldError for linux.cgroupsPath.
func CheckDriver(cgroupsPath string, systemd bool) error {
	if systemd {
		_, err := parseSystemdPath(cgroupsPath)
		return err
	}
	if isSystemdPath(cgroupsPath) {
		return &oci.FieldError{Field: "linux.cgroupsPath", Reason: fmt.Sprintf(
			"%q has the systemd cgroup driver's form slice:prefix:name, but the runtime option SystemdCgroup is not set", cgroupsPath)}
	}
	return nil
}

// LoadSystemd opens the scope of a systemd driver cgroupsPath that exists (for `delete` after a
// shim crash); Load calls it for paths of that form. A scope whose cgroup is gone fails with
// errdefs.ErrNotFound. No D-Bus connection is made until Update or Delete.
func LoadSystemd(cgroupsPath string) (Cgroup, error) {
	sp, err := parseSystemdPath(cgroupsPath)
	if err != nil {
		return nil, err
	}
	if err := systemdUsable(); err != nil {
		return nil, err
	}
	c := &systemdCgroup{path: cgroupsPath, sp: sp, dir: filepath.Join(cgroupRoot, sp.Dir)}
	v2, err := loadV2(cgroupsPath, sp.Dir)
	if err != nil {
		return nil, err
	}
	c.v2.Store(v2)
	return c, nil
}

// systemdUsable refuses hosts the driver cannot work on.
func systemdUsable() error {
	if m := Mode(); m != ModeV2 {
		return fmt.Errorf("the systemd cgroup driver needs cgroup v2 (unified); this host's cgroups are %q: %w", m, errdefs.ErrNotImplemented)
	}
	if _, err := os.Stat(systemdBooted); err != nil {
		return fmt.Errorf("the systemd cgroup driver needs systemd as the init system (%s: %v): %w", systemdBooted, err, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// systemdConnect connects to systemd: its private socket first (root, no dbus-daemon needed),
// else the system bus.
func systemdConnect(ctx context.Context) (*sddbus.Conn, error) {
	conn, err := sddbus.NewSystemdConnectionContext(ctx)
	if err == nil {
		return conn, nil
	}
	conn, err2 := sddbus.NewSystemConnectionContext(ctx)
	if err2 == nil {
		return conn, nil
	}
	return nil, fmt.Errorf("connect to systemd: %w: %w", errdefs.ErrUnavailable, errors.Join(err, err2))
}

// unitProperties are the properties the scope is started with.
func (c *systemdCgroup) unitProperties(pid int, res []sddbus.Property) []sddbus.Property {
	props := []sddbus.Property{
		sddbus.PropDescription("box container cgroup " + c.path),
		sddbus.PropSlice(c.sp.Slice),
		{Name: "PIDs", Value: dbus.MakeVariant([]uint32{uint32(pid)})},
		{Name: "Delegate", Value: dbus.MakeVariant(true)},
		// no implicit dependencies on basic.target, shutdown.target etc.: box stops the unit
		{Name: "DefaultDependencies", Value: dbus.MakeVariant(false)},
		{Name: "MemoryAccounting", Value: dbus.MakeVariant(true)},
		{Name: "CPUAccounting", Value: dbus.MakeVariant(true)},
		{Name: "IOAccounting", Value: dbus.MakeVariant(true)},
		{Name: "TasksAccounting", Value: dbus.MakeVariant(true)},
	}
	return append(props, res...)
}

// start starts the scope with pid in it and applies the resources. On failure the caller
// removes what exists with Delete (the runtime does, after killing pid).
func (c *systemdCgroup) start(pid int) (*v2Cgroup, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v2 := c.v2.Load(); v2 != nil {
		return v2, nil
	}
	resProps, err := systemdProperties(c.res)
	if err != nil {
		return nil, err
	}
	if skipResourceProperties {
		resProps = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), systemdTimeout)
	defer cancel()
	conn, err := systemdConnect(ctx)
	if err != nil {
		return nil, fmt.Errorf("start scope %s: %w", c.sp.Unit, err)
	}
	defer conn.Close()
	props := c.unitProperties(pid, resProps)
	err = runJob(ctx, func(ch chan<- string) error {
		_, err := conn.StartTransientUnitContext(ctx, c.sp.Unit, "replace", props, ch)
		return err
	})
	if isDBusError(err, "org.freedesktop.systemd1.UnitExists") {
		// a failed unit of the same name that nobody reset: reset it and try once more
		_ = conn.ResetFailedUnitContext(ctx, c.sp.Unit)
		err = runJob(ctx, func(ch chan<- string) error {
			_, err := conn.StartTransientUnitContext(ctx, c.sp.Unit, "replace", props, ch)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("start scope %s in %s: %w", c.sp.Unit, c.sp.Slice, classifyDBus(err))
	}
	if _, err := os.Lstat(c.dir); err != nil {
		return nil, fmt.Errorf("scope %s started, but its cgroup %s: %w", c.sp.Unit, c.dir, err)
	}
	// The direct writes (and the device filter) on the scope's directory; newV2 also enables
	// in the slices the controllers systemd does not manage (hugetlb, rdma, misc).
	v2, err := newV2(c.path, c.sp.Dir, c.res)
	if err != nil {
		return nil, err
	}
	c.res = nil
	c.v2.Store(v2)
	return v2, nil
}

// runJob calls start, which queues a systemd job reporting to ch, and waits for the job.
func runJob(ctx context.Context, start func(ch chan<- string) error) error {
	ch := make(chan string, 1) // go-systemd sends under a lock: never block it
	if err := start(ch); err != nil {
		return err
	}
	select {
	case result := <-ch:
		if result != "done" {
			return fmt.Errorf("systemd job %s", result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for systemd's job: %w", ctx.Err())
	}
}

func isDBusError(err error, name string) bool {
	var de dbus.Error
	return errors.As(err, &de) && de.Name == name
}

// classifyDBus adds an errdefs class to errors from systemd.
func classifyDBus(err error) error {
	switch {
	case isDBusError(err, "org.freedesktop.systemd1.UnitExists"):
		return fmt.Errorf("%w: %w", errdefs.ErrAlreadyExists, err)
	case isDBusError(err, "org.freedesktop.DBus.Error.InvalidArgs"), isDBusError(err, "org.freedesktop.DBus.Error.PropertyReadOnly"):
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	return err
}

// errNotStarted is what operations on a scope that no Add has started yet fail with.
func (c *systemdCgroup) errNotStarted() error {
	return fmt.Errorf("cgroup %s: scope %s is not started (no process added yet): %w", c.path, c.sp.Unit, errdefs.ErrNotFound)
}

func (c *systemdCgroup) Path() string { return c.path }

// CloneFD has no fd until the scope runs: the init stage is added with Add.
func (c *systemdCgroup) CloneFD() (int, bool, error) {
	v2 := c.v2.Load()
	if v2 == nil {
		return -1, false, nil
	}
	return v2.CloneFD()
}

// Add starts the scope with pid (the first time) or moves pid into it.
func (c *systemdCgroup) Add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("add pid %d: %w", pid, errdefs.ErrInvalidArgument)
	}
	if v2 := c.v2.Load(); v2 != nil {
		return v2.Add(pid)
	}
	_, err := c.start(pid)
	return err
}

func (c *systemdCgroup) Pids() ([]int, error) {
	v2 := c.v2.Load()
	if v2 == nil {
		return nil, c.errNotStarted()
	}
	return v2.Pids()
}

func (c *systemdCgroup) Kill(sig syscall.Signal) error {
	v2 := c.v2.Load()
	if v2 == nil {
		return c.errNotStarted()
	}
	return v2.Kill(sig)
}

func (c *systemdCgroup) Freeze() error {
	v2 := c.v2.Load()
	if v2 == nil {
		return c.errNotStarted()
	}
	return v2.Freeze()
}

func (c *systemdCgroup) Thaw() error {
	v2 := c.v2.Load()
	if v2 == nil {
		return c.errNotStarted()
	}
	return v2.Thaw()
}

// Update sets the unit properties systemd manages, then writes every value directly.
func (c *systemdCgroup) Update(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	v2 := c.v2.Load()
	if v2 == nil {
		return c.errNotStarted()
	}
	if err := checkUnified(r.Unified); err != nil {
		return err
	}
	props, err := systemdProperties(r)
	if err != nil {
		return err
	}
	if len(props) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), systemdTimeout)
		defer cancel()
		conn, err := systemdConnect(ctx)
		if err != nil {
			return fmt.Errorf("update scope %s: %w", c.sp.Unit, err)
		}
		defer conn.Close()
		if err := conn.SetUnitPropertiesContext(ctx, c.sp.Unit, true, props...); err != nil {
			if isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") {
				return fmt.Errorf("update scope %s: %w: %w", c.sp.Unit, errdefs.ErrNotFound, err)
			}
			return fmt.Errorf("update scope %s: %w", c.sp.Unit, classifyDBus(err))
		}
	}
	return v2.Update(r)
}

func (c *systemdCgroup) Stats() (any, error) {
	v2 := c.v2.Load()
	if v2 == nil {
		return nil, c.errNotStarted()
	}
	return v2.Stats()
}

// Delete stops the scope and resets it if it failed (an OOM kill can leave it failed, and a
// failed unit keeps its name taken), then removes any cgroup left below it. A scope that is
// gone already (systemd stops and removes a scope whose last process exited) is not an error.
func (c *systemdCgroup) Delete() error {
	pids, err := readProcsTree(c.dir)
	if errors.Is(err, syscall.ENODEV) {
		// systemd is removing the cgroup of a scope whose last process just exited
		pids, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("delete cgroup %s: %w", c.path, err)
	}
	if len(pids) > 0 {
		return fmt.Errorf("delete cgroup %s: %d processes remain: %w", c.path, len(pids), errdefs.ErrFailedPrecondition)
	}
	ctx, cancel := context.WithTimeout(context.Background(), systemdTimeout)
	defer cancel()
	conn, err := systemdConnect(ctx)
	if err != nil {
		return fmt.Errorf("delete cgroup %s: %w", c.path, err)
	}
	defer conn.Close()
	err = runJob(ctx, func(ch chan<- string) error {
		_, err := conn.StopUnitContext(ctx, c.sp.Unit, "replace", ch)
		return err
	})
	if err != nil && !isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") {
		return fmt.Errorf("delete cgroup %s: stop scope %s: %w", c.path, c.sp.Unit, classifyDBus(err))
	}
	if err := conn.ResetFailedUnitContext(ctx, c.sp.Unit); err != nil && !isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") {
		return fmt.Errorf("delete cgroup %s: reset scope %s: %w", c.path, c.sp.Unit, classifyDBus(err))
	}
	if err := removeTree(c.dir); err != nil {
		return fmt.Errorf("delete cgroup %s: %w", c.path, err)
	}
	return nil
}

// unwrapSystemd returns the v2 cgroup behind a started systemd scope, and cg itself otherwise;
// code that needs the cgroup's directory (the OOM watcher) calls it first.
func unwrapSystemd(cg Cgroup) Cgroup {
	if c, ok := cg.(*systemdCgroup); ok {
		if v2 := c.v2.Load(); v2 != nil {
			return v2
		}
	}
	return cg
}
