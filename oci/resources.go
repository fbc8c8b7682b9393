package oci

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Bounds of linux.resources values that no kernel accepts outside them. They are checked
// before anything is written, so a refused Create or Update changes nothing.
const (
	// MinCPUShares and MaxCPUShares bound cpu.shares (the kernel clamps values outside them,
	// and runc refuses what the kernel clamped). 0 means "unset".
	MinCPUShares = 2
	MaxCPUShares = 262144
	// MinCFSPeriod and MaxCFSPeriod bound cpu.period in µs; MinCFSQuota is the smallest
	// positive cpu.quota (-1 means unlimited, 0 "unset").
	MinCFSPeriod = 1000
	MaxCFSPeriod = 1000000
	MinCFSQuota  = 1000
	// MinBlkioWeight and MaxBlkioWeight bound blockIO weights (0 means "unset").
	MinBlkioWeight = 10
	MaxBlkioWeight = 1000
)

// unifiedControllers are the controller prefixes a linux.resources.unified key may have:
// cgroup v2's controllers. Keys of the core "cgroup." files are limited to
// unifiedCoreKeys.
var unifiedControllers = []string{"cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma", "misc"}

// unifiedCoreKeys are the core cgroup files that hold a limit. Every other "cgroup." file
// moves processes (cgroup.procs, cgroup.threads), changes the tree (cgroup.subtree_control,
// cgroup.type), freezes or kills (cgroup.freeze, cgroup.kill) or is read-only: the runtime
// owns those, and a spec must not reach them through unified.
var unifiedCoreKeys = []string{"cgroup.max.depth", "cgroup.max.descendants"}

// CheckResources validates linux.resources without looking at the host: it refuses values
// that no cgroup version accepts, so that Create and Update fail before anything is written.
// What depends on the host (a controller not mounted, a kernel without realtime groups, a
// limit below current usage) is the runtime's to judge. A nil r is valid.
//
// As runc does, 0 in cpu.shares, cpu.quota, cpu.period, memory limits and blockIO weights
// means "unset". pids.limit 0 is a real limit (runtime-spec 1.3: "0 is a valid limit value
// ... and SHOULD be treated as such"), and -1 means no limit.
//
// Errors are *FieldError naming "linux.resources.<field>".
func CheckResources(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	for _, check := range []func(*specs.LinuxResources) error{
		checkMemory, checkCPU, checkPids, checkBlockIO, checkHugepages,
		checkNetwork, checkRdma, checkUnified, checkDeviceRules,
	} {
		if err := check(r); err != nil {
			return err
		}
	}
	return nil
}

func resErr(field, format string, args ...any) error {
	return fieldErrorf("linux.resources."+field, format, args...)
}

func checkMemory(r *specs.LinuxResources) error {
	m := r.Memory
	if m == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{
		{"memory.limit", m.Limit}, {"memory.reservation", m.Reservation}, {"memory.swap", m.Swap},
		{"memory.kernel", m.Kernel}, {"memory.kernelTCP", m.KernelTCP}, //nolint:staticcheck // validated, then ignored as runc does
	} {
		if f.v != nil && *f.v < -1 {
			return resErr(f.name, "%d is neither a byte count nor -1 (unlimited)", *f.v)
		}
	}
	if m.Limit != nil && m.Swap != nil && *m.Limit > 0 && *m.Swap > 0 && *m.Swap < *m.Limit {
		return resErr("memory.swap", "%d is less than memory.limit %d (swap is the memory+swap limit)", *m.Swap, *m.Limit)
	}
	// -1 as a uint64 is what some clients send for "unset"; runc skips it too.
	if s := m.Swappiness; s != nil && *s > 100 && *s != math.MaxUint64 {
		return resErr("memory.swappiness", "%d is not in 0..100", *s)
	}
	return nil
}

func checkCPU(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil {
		return nil
	}
	if s := c.Shares; s != nil && *s != 0 && (*s < MinCPUShares || *s > MaxCPUShares) {
		return resErr("cpu.shares", "%d is not in %d..%d", *s, MinCPUShares, MaxCPUShares)
	}
	if q := c.Quota; q != nil && *q != 0 && *q != -1 && *q < MinCFSQuota {
		return resErr("cpu.quota", "%d µs is neither -1 (unlimited) nor at least %d", *q, MinCFSQuota)
	}
	if p := c.Period; p != nil && *p != 0 && (*p < MinCFSPeriod || *p > MaxCFSPeriod) {
		return resErr("cpu.period", "%d µs is not in %d..%d", *p, MinCFSPeriod, MaxCFSPeriod)
	}
	// The spec: a positive quota "MUST be no smaller than burst (runtimes MAY generate an error)".
	if b, q := c.Burst, c.Quota; b != nil && q != nil && *q > 0 && *b > uint64(*q) {
		return resErr("cpu.burst", "%d µs is larger than cpu.quota %d", *b, *q)
	}
	if rt := c.RealtimeRuntime; rt != nil && *rt < -1 {
		return resErr("cpu.realtimeRuntime", "%d µs is neither a duration nor -1 (unlimited)", *rt)
	}
	if rt, rp := c.RealtimeRuntime, c.RealtimePeriod; rt != nil && rp != nil && *rp != 0 && *rt > 0 && uint64(*rt) > *rp {
		return resErr("cpu.realtimeRuntime", "%d µs is longer than cpu.realtimePeriod %d", *rt, *rp)
	}
	if i := c.Idle; i != nil && *i != 0 && *i != 1 {
		return resErr("cpu.idle", "%d is neither 0 nor 1", *i)
	}
	if err := checkNodeList(c.Cpus); err != nil {
		return resErr("cpu.cpus", "%v", err)
	}
	if err := checkNodeList(c.Mems); err != nil {
		return resErr("cpu.mems", "%v", err)
	}
	return nil
}

// checkNodeList checks the kernel's list format ("0-3,7"); empty means unset.
func checkNodeList(s string) error {
	if s == "" {
		return nil
	}
	bad := fmt.Errorf("%q is not a list like 0-3,7", s)
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return bad
		}
		if isRange {
			b, err := strconv.ParseUint(hi, 10, 16)
			if err != nil || b < a {
				return bad
			}
		}
	}
	return nil
}

func checkPids(r *specs.LinuxResources) error {
	if p := r.Pids; p != nil && p.Limit != nil && *p.Limit < -1 {
		return resErr("pids.limit", "%d is neither a count nor -1 (unlimited)", *p.Limit)
	}
	return nil
}

func checkWeight(field string, w *uint16) error {
	if w != nil && *w != 0 && (*w < MinBlkioWeight || *w > MaxBlkioWeight) {
		return resErr(field, "%d is not in %d..%d", *w, MinBlkioWeight, MaxBlkioWeight)
	}
	return nil
}

func checkBlockDevice(field string, d specs.LinuxBlockIODevice) error {
	if d.Major < 0 || d.Major > maxMajor {
		return resErr(field+".major", "%d is not a device major number", d.Major)
	}
	if d.Minor < 0 || d.Minor > maxMinor {
		return resErr(field+".minor", "%d is not a device minor number", d.Minor)
	}
	return nil
}

func checkBlockIO(r *specs.LinuxResources) error {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	if err := checkWeight("blockIO.weight", b.Weight); err != nil {
		return err
	}
	if err := checkWeight("blockIO.leafWeight", b.LeafWeight); err != nil {
		return err
	}
	for i, d := range b.WeightDevice {
		f := fmt.Sprintf("blockIO.weightDevice[%d]", i)
		if err := checkBlockDevice(f, d.LinuxBlockIODevice); err != nil {
			return err
		}
		if d.Weight == nil && d.LeafWeight == nil {
			return resErr(f, "neither weight nor leafWeight is set")
		}
		if err := checkWeight(f+".weight", d.Weight); err != nil {
			return err
		}
		if err := checkWeight(f+".leafWeight", d.LeafWeight); err != nil {
			return err
		}
	}
	for name, list := range map[string][]specs.LinuxThrottleDevice{
		"throttleReadBpsDevice": b.ThrottleReadBpsDevice, "throttleWriteBpsDevice": b.ThrottleWriteBpsDevice,
		"throttleReadIOPSDevice": b.ThrottleReadIOPSDevice, "throttleWriteIOPSDevice": b.ThrottleWriteIOPSDevice,
	} {
		for i, d := range list {
			if err := checkBlockDevice(fmt.Sprintf("blockIO.%s[%d]", name, i), d.LinuxBlockIODevice); err != nil {
				return err
			}
		}
	}
	return nil
}

// HugePageSizeName turns a huge page size in bytes into the name the hugetlb controller
// uses in its file names and the spec in pageSize: 2097152 is "2MB", 1073741824 "1GB".
func HugePageSizeName(bytes uint64) string {
	units := []string{"B", "KB", "MB", "GB", "TB"}
	i := 0
	for bytes >= 1024 && bytes%1024 == 0 && i < len(units)-1 {
		bytes /= 1024
		i++
	}
	return strconv.FormatUint(bytes, 10) + units[i]
}

// ParseHugePageSize parses a pageSize ("<size><unit-prefix>B", base 1024: "64KB", "2MB",
// "1GB") into bytes. The size must be a power of two.
func ParseHugePageSize(s string) (uint64, error) {
	units := map[string]uint64{"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
	if len(s) < 3 {
		return 0, fmt.Errorf("%q is not a size like 2MB or 1GB", s)
	}
	mult, ok := units[s[len(s)-2:]]
	n, err := strconv.ParseUint(s[:len(s)-2], 10, 32)
	if !ok || err != nil || n == 0 || n&(n-1) != 0 || s[0] == '+' {
		return 0, fmt.Errorf("%q is not a size like 2MB or 1GB (a power of two with KB, MB or GB)", s)
	}
	return n * mult, nil
}

func checkHugepages(r *specs.LinuxResources) error {
	seen := map[uint64]bool{}
	for i, h := range r.HugepageLimits {
		size, err := ParseHugePageSize(h.Pagesize)
		if err != nil {
			return resErr(fmt.Sprintf("hugepageLimits[%d].pageSize", i), "%v", err)
		}
		if seen[size] {
			return resErr(fmt.Sprintf("hugepageLimits[%d].pageSize", i), "%q is listed twice", h.Pagesize)
		}
		seen[size] = true
	}
	return nil
}

// validName reports whether s can name an interface or an RDMA device in a cgroup file:
// the kernel parses those files by whitespace, and a name is never a path.
func validName(s string, max int) bool {
	return s != "" && len(s) <= max && s != "." && s != ".." &&
		!strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '/' || r == 0x7f })
}

func checkNetwork(r *specs.LinuxResources) error {
	if r.Network == nil {
		return nil
	}
	seen := map[string]bool{}
	for i, p := range r.Network.Priorities {
		if !validName(p.Name, 15) { // IFNAMSIZ - 1
			return resErr(fmt.Sprintf("network.priorities[%d].name", i), "%q is not an interface name", p.Name)
		}
		if seen[p.Name] {
			return resErr(fmt.Sprintf("network.priorities[%d].name", i), "%q is listed twice", p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

func checkRdma(r *specs.LinuxResources) error {
	for dev := range r.Rdma {
		if !validName(dev, 64) { // IB_DEVICE_NAME_MAX
			return resErr(fmt.Sprintf("rdma[%q]", dev), "%q is not an RDMA device name", dev)
		}
	}
	return nil
}

// CheckUnifiedKey checks that a linux.resources.unified key names a limit file of a cgroup
// v2 controller: "<controller>.<name>", with no "/" and no "..", and not a core cgroup file
// the runtime owns (see unifiedCoreKeys).
func CheckUnifiedKey(k string) error {
	if k == "" || strings.Contains(k, "/") || strings.Contains(k, "..") || strings.ContainsRune(k, 0) {
		return fmt.Errorf("%q is not a cgroup file name", k)
	}
	ctl, name, ok := strings.Cut(k, ".")
	if !ok || name == "" || strings.ContainsFunc(k, func(r rune) bool {
		return !(r == '.' || r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) {
		return fmt.Errorf("%q is not of the form <controller>.<file>", k)
	}
	if ctl == "cgroup" {
		if !slices.Contains(unifiedCoreKeys, k) {
			return fmt.Errorf("%q is a core cgroup file the runtime manages (allowed: %s)", k, strings.Join(unifiedCoreKeys, ", "))
		}
		return nil
	}
	if !slices.Contains(unifiedControllers, ctl) {
		return fmt.Errorf("%q: %q is not a cgroup v2 controller", k, ctl)
	}
	return nil
}

func checkUnified(r *specs.LinuxResources) error {
	for _, k := range slices.Sorted(maps.Keys(r.Unified)) {
		if err := CheckUnifiedKey(k); err != nil {
			return resErr(fmt.Sprintf("unified[%q]", k), "%v", err)
		}
		if strings.ContainsRune(r.Unified[k], 0) {
			return resErr(fmt.Sprintf("unified[%q]", k), "the value has a NUL byte")
		}
	}
	return nil
}

// checkDeviceRules checks linux.resources.devices: type "a", "b", "c" or unset (all),
// major and minor a number or unset/-1 (any), access a non-empty combination of r, w and m
// without repeats (runc refuses an empty access too).
func checkDeviceRules(r *specs.LinuxResources) error {
	for i, d := range r.Devices {
		f := fmt.Sprintf("devices[%d]", i)
		switch d.Type {
		case "", "a", "b", "c":
		default:
			return resErr(f+".type", "%q is not one of a, b, c", d.Type)
		}
		if d.Major != nil && (*d.Major < -1 || *d.Major > maxMajor) {
			return resErr(f+".major", "%d is neither a device major number nor -1 (any)", *d.Major)
		}
		if d.Minor != nil && (*d.Minor < -1 || *d.Minor > maxMinor) {
			return resErr(f+".minor", "%d is neither a device minor number nor -1 (any)", *d.Minor)
		}
		if d.Access == "" {
			return resErr(f+".access", "is empty (runc refuses it too); give a combination of r, w and m")
		}
		for j, c := range d.Access {
			if !strings.ContainsRune("rwm", c) || strings.ContainsRune(d.Access[:j], c) {
				return resErr(f+".access", "%q is not a combination of r, w and m", d.Access)
			}
		}
	}
	return nil
}
