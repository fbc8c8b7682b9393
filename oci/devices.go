package oci

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Limits of the kernel's dev_t: 12 bits of major, 20 bits of minor.
const (
	maxMajor = 1<<12 - 1
	maxMinor = 1<<20 - 1
)

// defaultDevices are the nodes every container gets in /dev unless
// linux.devices lists the same path. The runtime spec: "the runtime MUST
// supply" /dev/null, zero, full, random, urandom, tty, console and ptmx;
// console and ptmx come from the terminal and devpts, not from mknod.
var defaultDevices = []Device{
	{Path: "/dev/null", Type: 'c', Major: 1, Minor: 3, FileMode: 0o666},
	{Path: "/dev/zero", Type: 'c', Major: 1, Minor: 5, FileMode: 0o666},
	{Path: "/dev/full", Type: 'c', Major: 1, Minor: 7, FileMode: 0o666},
	{Path: "/dev/random", Type: 'c', Major: 1, Minor: 8, FileMode: 0o666},
	{Path: "/dev/urandom", Type: 'c', Major: 1, Minor: 9, FileMode: 0o666},
	{Path: "/dev/tty", Type: 'c', Major: 5, Minor: 0, FileMode: 0o666},
}

// DefaultDeviceRules are the device cgroup rules that allow the default
// devices, /dev/pts/* (136:*), /dev/ptmx (5:2) and /dev/console (5:1), all
// "rwm". They are meant to be applied after linux.resources.devices so that
// a container can always use the nodes the runtime gives it.
var DefaultDeviceRules = defaultDeviceRules()

func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	rule := func(major int64, minor *int64) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: minor, Access: "rwm"}
	}
	var rules []specs.LinuxDeviceCgroup
	for _, d := range defaultDevices {
		minor := d.Minor
		rules = append(rules, rule(d.Major, &minor))
	}
	ptmx, console := int64(2), int64(1)
	return append(rules,
		rule(136, nil), // /dev/pts/*: any minor
		rule(5, &ptmx),
		rule(5, &console),
	)
}

// Devices returns the device nodes to create in the container's /dev: the
// defaults (in a fixed order, minus those whose path linux.devices lists),
// then linux.devices in spec order.
//
// Each spec device must have an absolute path below /dev, a type of c, b,
// u or p, a non-zero major for c, b and u, and a path no other device has.
// An absent fileMode means 0666, an absent uid or gid means 0. Only the
// permission bits of fileMode are kept. Errors are *FieldError naming
// "linux.devices[i].<field>".
func Devices(s *specs.Spec) ([]Device, error) {
	var spec []specs.LinuxDevice
	if s.Linux != nil {
		spec = s.Linux.Devices
	}
	listed := make(map[string]bool, len(spec))
	var devs []Device
	for i, sd := range spec {
		d, err := parseDevice(sd)
		if err != nil {
			return nil, prefixField(fmt.Sprintf("linux.devices[%d]", i), err)
		}
		if listed[d.Path] {
			return nil, fieldErrorf(fmt.Sprintf("linux.devices[%d].path", i), "%q is listed twice", d.Path)
		}
		listed[d.Path] = true
		devs = append(devs, d)
	}
	out := make([]Device, 0, len(defaultDevices)+len(devs))
	for _, d := range defaultDevices {
		if !listed[d.Path] {
			out = append(out, d)
		}
	}
	return append(out, devs...), nil
}

// parseDevice validates one linux.devices entry. Errors name the field
// relative to the entry.
func parseDevice(sd specs.LinuxDevice) (Device, error) {
	p := filepath.Clean(sd.Path)
	if !filepath.IsAbs(sd.Path) || !strings.HasPrefix(p, "/dev/") || strings.ContainsRune(p, 0) {
		return Device{}, fieldErrorf("path", "%q is not an absolute path below /dev", sd.Path)
	}
	if len(sd.Type) != 1 || !strings.Contains("cbup", sd.Type) {
		return Device{}, fieldErrorf("type", "%q is not one of c, b, u, p", sd.Type)
	}
	d := Device{Path: p, Type: rune(sd.Type[0]), Major: sd.Major, Minor: sd.Minor, FileMode: 0o666}
	if d.Type == 'p' {
		d.Major, d.Minor = 0, 0
	} else {
		if sd.Major <= 0 || sd.Major > maxMajor {
			return Device{}, fieldErrorf("major", "%d is not a device major number (1..%d)", sd.Major, maxMajor)
		}
		if sd.Minor < 0 || sd.Minor > maxMinor {
			return Device{}, fieldErrorf("minor", "%d is not a device minor number (0..%d)", sd.Minor, maxMinor)
		}
	}
	if sd.FileMode != nil {
		d.FileMode = *sd.FileMode & os.ModePerm
	}
	if sd.UID != nil {
		d.UID = *sd.UID
	}
	if sd.GID != nil {
		d.GID = *sd.GID
	}
	return d, nil
}
