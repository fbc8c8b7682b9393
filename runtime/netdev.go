package runtime

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// hostNetNS opens the network namespace linux.netDevices are moved from:
// the daemon's. A test replaces it with a namespace of its own.
var hostNetNS = func() (int, error) {
	return unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// moveNetDevices moves linux.netDevices from the daemon's network
// namespace into the init's, as runc does: each device is set down, moved
// and renamed in one request (so it never exists in the container under a
// name that could clash), given back its permanent addresses of global
// scope (the kernel drops every address of a device that changes
// namespace), and set up.
//
// On error the devices already moved stay in the container's namespace:
// the spec leaves them to the kernel when that namespace goes away
// (physical devices return to the initial namespace, virtual ones are
// destroyed), which Create's rollback causes unless the namespace was
// joined by path.
//
// Preconditions: the init is running and in its network namespace.
func (c *Container) moveNetDevices(devs []oci.NetDevice) error {
	if len(devs) == 0 {
		return nil
	}
	host, err := hostNetNS()
	if err != nil {
		return fmt.Errorf("linux.netDevices: open the runtime's network namespace: %w", err)
	}
	defer unix.Close(host)
	path := fmt.Sprintf("/proc/%d/ns/net", c.Pid)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("linux.netDevices: open %s: %w", path, err)
	}
	defer unix.Close(target)
	// The pid could name another process only if the init was reaped.
	if err := c.checkRunning(); err != nil {
		return err
	}
	if same, err := sameFile(host, target); err != nil || same {
		if err != nil {
			return fmt.Errorf("linux.netDevices: %w", err)
		}
		// Moving would only rename the runtime's own devices (runc does
		// not check; box refuses).
		return fmt.Errorf("linux.netDevices: the container's network namespace is the runtime's own: %w", errdefs.ErrFailedPrecondition)
	}
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread's network namespace changes, so it
		// must die with the goroutine.
		lockOSThread()
		done <- moveOnThread(host, target, devs)
	}()
	return <-done
}

// moveOnThread opens a netlink socket in each namespace and moves devs.
//
// Preconditions: the calling goroutine is locked to its thread, for good.
func moveOnThread(host, target int, devs []oci.NetDevice) error {
	if err := unix.Setns(host, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("linux.netDevices: join the runtime's network namespace: %w", err)
	}
	src, err := openNetlink()
	if err != nil {
		return fmt.Errorf("linux.netDevices: %w", err)
	}
	defer src.Close()
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("linux.netDevices: join the container's network namespace: %w", err)
	}
	dst, err := openNetlink()
	if err != nil {
		return fmt.Errorf("linux.netDevices: %w", err)
	}
	defer dst.Close()
	for _, d := range devs {
		if err := moveNetDevice(src, dst, target, d); err != nil {
			return fmt.Errorf("linux.netDevices[%q]: %w", d.HostName, err)
		}
	}
	return nil
}

func moveNetDevice(src, dst *nlConn, target int, d oci.NetDevice) error {
	index, err := src.linkIndex(d.HostName)
	if errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("no device %q in the runtime's network namespace: %w", d.HostName, errdefs.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("find device: %w", err)
	}
	if err := src.setLinkUp(index, false); err != nil {
		return fmt.Errorf("set device down: %w", err)
	}
	addrs, err := src.permanentGlobalAddrs(index)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	if err := src.moveLink(index, d.Name, target); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("the container already has a device %q: %w", d.Name, errdefs.ErrAlreadyExists)
		}
		return fmt.Errorf("move device into the container as %q: %w", d.Name, err)
	}
	index, err = dst.linkIndex(d.Name)
	if err != nil {
		return fmt.Errorf("find device %q in the container: %w", d.Name, err)
	}
	for _, a := range addrs {
		if err := dst.addAddr(index, a); err != nil {
			return fmt.Errorf("restore address on %q: %w", d.Name, err)
		}
	}
	if err := dst.setLinkUp(index, true); err != nil {
		return fmt.Errorf("set %q up: %w", d.Name, err)
	}
	return nil
}

// sameFile reports whether two descriptors are the same namespace file.
func sameFile(a, b int) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Fstat(a, &sa); err != nil {
		return false, err
	}
	if err := unix.Fstat(b, &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}
