package process

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// dropBounding removes from the calling thread's bounding set every
// capability the kernel knows that is not in keep.
func dropBounding(keep uint64) error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if c < 64 && keep&(1<<c) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// lastCap returns the highest capability number the running kernel knows,
// from /proc/sys/kernel/cap_last_cap, or else by asking for the bounding
// bit of each capability until the kernel says there is no such one.
func lastCap() (int, error) {
	data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		n, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("parse cap_last_cap %q: %w", data, err)
		}
		return n, nil
	}
	for c := 0; c < 64; c++ {
		if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); errors.Is(err, unix.EINVAL) {
			return c - 1, nil
		}
	}
	return 63, nil
}

// setIdentity sets the calling thread's groups, gid and uid with the raw,
// per-thread system calls (libc and syscall.Set*id change every thread of
// the process; the other threads of this process stay root until execve
// ends them). PR_SET_KEEPCAPS keeps the permitted set across the change
// from uid 0, for setCapabilities to pick from.
func setIdentity(id oci.Identity) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set keepcaps: %w", err)
	}
	if setgroupsDenied() {
		// The daemon cleared the groups before the namespace was joined;
		// only additional ones cannot be had here. The process's own gid
		// (containerd lists it among them) it has anyway.
		for _, g := range id.AdditionalGids {
			if g != id.GID {
				return fmt.Errorf("process.user.additionalGids %v: the container's user namespace denies setgroups: %w", id.AdditionalGids, errdefs.ErrInvalidArgument)
			}
		}
	} else if err := setgroups(id.AdditionalGids); err != nil {
		return fmt.Errorf("setgroups %v: %w", id.AdditionalGids, err)
	}
	if _, _, e := unix.RawSyscall(sysSetresgid, uintptr(id.GID), uintptr(id.GID), uintptr(id.GID)); e != 0 {
		return fmt.Errorf("setresgid %d: %w", id.GID, e)
	}
	if _, _, e := unix.RawSyscall(sysSetresuid, uintptr(id.UID), uintptr(id.UID), uintptr(id.UID)); e != 0 {
		return fmt.Errorf("setresuid %d: %w", id.UID, e)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keepcaps: %w", err)
	}
	return nil
}

// setgroupsDenied reports whether the caller's user namespace forbids
// setgroups(2) ("deny" in /proc/self/setgroups, as an unprivileged creator
// of a joined user namespace must leave it). runc skips setgroups there too.
func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

func setgroups(gids []uint32) error {
	var p unsafe.Pointer
	if len(gids) > 0 {
		p = unsafe.Pointer(&gids[0])
	}
	if _, _, e := unix.RawSyscall(sysSetgroups, uintptr(len(gids)), uintptr(p), 0); e != 0 {
		return e
	}
	return nil
}

// setCapabilities sets the effective, permitted and inheritable sets of the
// calling thread, then its ambient set. The ambient set is cleared first, so
// it is exactly caps.Ambient.
func setCapabilities(caps oci.Capabilities) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3} // Pid 0: this thread
	var data [2]unix.CapUserData                                        // v3: low, high 32 bits
	for i := range data {
		shift := 32 * i
		data[i].Effective = uint32(caps.Effective >> shift)
		data[i].Permitted = uint32(caps.Permitted >> shift)
		data[i].Inheritable = uint32(caps.Inheritable >> shift)
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset (effective %#x, permitted %#x, inheritable %#x): %w",
			caps.Effective, caps.Permitted, caps.Inheritable, err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for c := 0; c < 64; c++ {
		if caps.Ambient&(1<<c) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %d: %w", c, err)
		}
	}
	return nil
}
