// Package cgroup creates and controls a container's cgroup, on cgroup v1 (legacy and hybrid
// hosts) and cgroup v2 (unified hosts), through github.com/containerd/cgroups/v3.
//
// A container's cgroup is named by the OCI linux.cgroupsPath. Absolute paths are relative to
// the cgroup root (/sys/fs/cgroup on v2, /sys/fs/cgroup/<controller> on v1); relative paths
// are placed under RelativeParent ("/box"). On v1 the cgroup is created in every mounted
// controller hierarchy; named hierarchies (name=systemd) belong to the init system and are
// left alone. A cgroupsPath of the form "slice:prefix:name" selects the systemd driver
// (systemd.go; CheckDriver matches it with the runtime option SystemdCgroup).
package cgroup

import (
	"fmt"
	"os"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Cgroup is a container's cgroup. Methods are safe for concurrent use. A Cgroup holds no
// resources of its own (no fds, no goroutines), so there is nothing to close; Delete removes
// the kernel object.
type Cgroup interface {
	// Path is the cgroupsPath it was created from.
	Path() string
	// CloneFD returns an O_PATH|O_DIRECTORY|O_CLOEXEC fd of the cgroup directory for
	// CLONE_INTO_CGROUP (cgroup v2 only; ok=false on v1). The caller owns the fd.
	CloneFD() (fd int, ok bool, err error)
	// Add moves pid into the cgroup (all v1 hierarchies that are mounted, or v2 cgroup.procs).
	Add(pid int) error
	// Pids lists every pid in the cgroup (recursively), sorted.
	Pids() ([]int, error)
	// Kill sends sig to every process in the cgroup; on v2 with SIGKILL it uses cgroup.kill
	// when present. Elsewhere it signals the processes listed at the time of the call through
	// pidfds; processes forked meanwhile may be missed. On v1 a frozen process handles a
	// signal only once thawed, so SIGKILL also thaws a frozen cgroup; other signals stay
	// pending until Thaw.
	Kill(sig syscall.Signal) error
	// Freeze and Thaw use the freezer. They return once the cgroup reached the state.
	Freeze() error
	Thaw() error
	// Update applies new resources. On v2, device rules can only narrow access (see New).
	Update(r *specs.LinuxResources) error
	// Stats returns *cgroup1stats.Metrics (github.com/containerd/cgroups/v3/cgroup1/stats) on
	// v1 or *cgroup2stats.Metrics (github.com/containerd/cgroups/v3/cgroup2/stats) on v2.
	Stats() (any, error)
	// Delete removes the cgroup and any cgroups below it. It is idempotent: a cgroup already
	// gone is not an error. It fails with an errdefs.ErrFailedPrecondition-wrapped error if
	// processes remain.
	Delete() error
}

// SelfJoiner is a cgroup that a new, still single-threaded process can join by itself: a v1
// cgroup of the cgroupfs driver. The process writes "0" to each of the TaskFiles, moving only
// the calling thread, which the kernel does without the global lock that every other
// migration takes (cgroup_threadgroup_rwsem; its write side waits for an RCU grace period,
// 8–16 ms per migration measured here against 0.3–0.5 ms for all hierarchies). Only a
// process with one thread may do it: the others would stay behind.
type SelfJoiner interface {
	// TaskFiles opens the "tasks" file of the cgroup in every hierarchy, write-only and
	// close-on-exec. The caller owns the files.
	TaskFiles() ([]*os.File, error)
}

// New creates (or opens, if it exists) the cgroup at cgroupsPath and applies res (nil means
// no limits).
//
// Paths are resolved as described in the package documentation; an empty path, or one with a
// ".." component, fails with errdefs.ErrInvalidArgument. A resource value the kernel refuses
// fails with errdefs.ErrInvalidArgument naming the linux.resources field.
//
// On v1 the cgroup is created in every mounted controller hierarchy, and res.Devices is
// written to devices.deny/devices.allow. linux.resources.unified needs v2 and is refused.
//
// On v2 it uses cgroup2.NewManager with cgroup2.ToResources(res) plus res.Devices (which
// ToResources drops), then writes res.Unified. The device rules become an eBPF program
// attached with BPF_F_ALLOW_MULTI that is never detached, so a later Update can narrow
// device access but not widen it.
//
// If New fails it removes the directories it created (rmdir only); a cgroup that existed
// before keeps whatever values were already written to it.
func New(cgroupsPath string, res *specs.LinuxResources) (Cgroup, error) {
	if isSystemdPath(cgroupsPath) {
		return NewSystemd(cgroupsPath, res) // the shim checks SystemdCgroup agrees: CheckDriver
	}
	p, err := resolve(cgroupsPath)
	if err != nil {
		return nil, err
	}
	if res == nil {
		res = &specs.LinuxResources{}
	}
	switch m := Mode(); m {
	case ModeV1:
		return newV1(cgroupsPath, p, res)
	case ModeV2:
		return newV2(cgroupsPath, p, res)
	default:
		return nil, errNoCgroupFS()
	}
}

// Load opens an existing cgroup (for `delete` after a shim crash). A cgroup that exists in no
// hierarchy fails with errdefs.ErrNotFound.
func Load(cgroupsPath string) (Cgroup, error) {
	if isSystemdPath(cgroupsPath) {
		return LoadSystemd(cgroupsPath)
	}
	p, err := resolve(cgroupsPath)
	if err != nil {
		return nil, err
	}
	switch Mode() {
	case ModeV1:
		return loadV1(cgroupsPath, p)
	case ModeV2:
		return loadV2(cgroupsPath, p)
	default:
		return nil, errNoCgroupFS()
	}
}

func errNoCgroupFS() error {
	return fmt.Errorf("no cgroup filesystem mounted at %s: %w", cgroupRoot, errdefs.ErrNotImplemented)
}

func errDeleted(cgroupsPath string) error {
	return fmt.Errorf("cgroup %s: %w", cgroupsPath, errdefs.ErrNotFound)
}
