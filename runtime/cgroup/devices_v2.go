package cgroup

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// stackDeviceFilters is a test hook: when set, setDevicesV2 attaches the new program but
// leaves the old ones attached, as a filter attached with BPF_F_ALLOW_MULTI and never
// detached would (the negative control of the replacement test).
var stackDeviceFilters = false

// setDevicesV2 makes rules the cgroup's device filter: an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE attached to dir. It replaces whatever device programs are
// attached to dir (a previous Create or Update, possibly by another daemon: the set is read
// from the kernel with BPF_PROG_QUERY, not remembered), so after any number of updates
// exactly one program is attached. The new program is attached before the old ones are
// detached: in between, both must allow an access, which is never more than either allows.
// nil rules leave the filter alone.
func setDevicesV2(dir string, rules []specs.LinuxDeviceCgroup) (retErr error) {
	if rules == nil {
		return nil
	}
	insts, license, err := cgroup2.DeviceFilter(normalizeDevices(rules))
	if err != nil {
		return fmt.Errorf("linux.resources.devices: build the device filter: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.CGroupDevice, Instructions: insts, License: license})
	if err != nil {
		return fmt.Errorf("linux.resources.devices: load the device filter: %w", err)
	}
	defer prog.Close() // the attachment keeps its own reference
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("linux.resources.devices: open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	old, err := deviceProgramIDs(fd)
	if err != nil {
		return fmt.Errorf("linux.resources.devices: %w", err)
	}
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{
		Target: fd, Program: prog, Attach: ebpf.AttachCGroupDevice, Flags: unix.BPF_F_ALLOW_MULTI,
	}); err != nil {
		return fmt.Errorf("linux.resources.devices: attach the device filter to %s: %w", dir, err)
	}
	if stackDeviceFilters {
		return nil
	}
	var errs []error
	for _, id := range old {
		if err := detachProgram(fd, id); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("linux.resources.devices: detach the previous device filter: %w", err)
	}
	return nil
}

// deviceProgramIDs lists the device programs attached to the cgroup fd (not inherited ones).
func deviceProgramIDs(fd int) ([]ebpf.ProgramID, error) {
	res, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return nil, fmt.Errorf("query the device filters: %w", err)
	}
	ids := make([]ebpf.ProgramID, 0, len(res.Programs))
	for _, p := range res.Programs {
		ids = append(ids, p.ID)
	}
	return ids, nil
}

func detachProgram(fd int, id ebpf.ProgramID) error {
	p, err := ebpf.NewProgramFromID(id)
	if errors.Is(err, unix.ENOENT) {
		return nil // gone meanwhile
	}
	if err != nil {
		return fmt.Errorf("open program %d: %w", id, err)
	}
	defer p.Close()
	err = link.RawDetachProgram(link.RawDetachProgramOptions{Target: fd, Program: p, Attach: ebpf.AttachCGroupDevice})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("detach program %d: %w", id, err)
	}
	return nil
}

// deviceProgramCount returns how many device programs are attached to the v2 cgroup
// directory dir itself, not inherited ones (for tests).
func deviceProgramCount(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ids, err := deviceProgramIDs(fd)
	return len(ids), err
}
