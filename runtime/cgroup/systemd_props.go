package cgroup

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup2"
	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// infinity is systemd's "no limit" for the uint64 resource properties (UINT64_MAX; for
// CPUQuotaPerSecUSec it is USEC_INFINITY, the same value).
const infinity = math.MaxUint64

// maxCPUSetBit bounds the CPU and memory node numbers a cpuset list may name, so that a value
// like "0-4000000000" is refused instead of allocating a huge bitmask. Linux's NR_CPUS is at
// most 8192.
const maxCPUSetBit = 8192

// systemdProperties maps the linux.resources systemd manages for a unit to its unit
// properties, so that systemd writes the same values whenever it re-applies the unit's cgroup
// settings (daemon-reload, a property change by someone else) instead of resetting them.
// box writes every value itself as well (the cgroupfs v2 path, which also covers what systemd
// has no property for: hugetlb, rdma, io.max, memory.oom.group, devices, other unified keys).
//
// The mapping starts from cgroup2.ToResources, the conversion the direct writes use, so that
// both agree, except where that conversion is wrong: memory.swap -1 (it computes -1 - limit)
// and blockIO.weight (it overflows a uint16 for weights above 16) are converted here:
//
//	cpu.shares -> CPUWeight (converted to a weight)       memory.limit -> MemoryMax
//	cpu.quota/cpu.period -> CPUQuotaPerSecUSec,           memory.reservation -> MemoryLow
//	                        CPUQuotaPeriodUSec            memory.swap -> MemorySwapMax (see swapMax)
//	cpu.cpus -> AllowedCPUs, cpu.mems -> AllowedMemoryNodes (bitmasks)
//	pids.limit -> TasksMax                                blockIO.weight -> IOWeight
//	unified: memory.{min,low,high,max,swap.max}, pids.max, cpu.weight, cpu.max,
//	         cpuset.{cpus,mems} -> the same properties (a unified value wins)
//
// A negative limit (-1) or "max" is infinity. Zero memory and pids limits are "unset", as in
// runc, and map to nothing. systemd keeps CPU quotas in 10 ms per second steps, so the
// quota property is rounded up to one; the exact value is in cpu.max. Invalid values fail with
// *oci.FieldError naming the field; nothing is sent to systemd then.
func systemdProperties(res *specs.LinuxResources) ([]sddbus.Property, error) {
	if res == nil {
		return nil, nil
	}
	r := cgroup2.ToResources(res)
	var props []sddbus.Property
	set := func(name string, v any) {
		for i := range props {
			if props[i].Name == name {
				props[i].Value = dbus.MakeVariant(v)
				return
			}
		}
		props = append(props, sddbus.Property{Name: name, Value: dbus.MakeVariant(v)})
	}
	limit := func(name string, v *int64) {
		switch {
		case v == nil || *v == 0:
		case *v < 0:
			set(name, uint64(infinity))
		default:
			set(name, uint64(*v))
		}
	}
	if m := r.Memory; m != nil {
		limit("MemoryMax", m.Max)
		limit("MemoryLow", m.Low)
	}
	if m := res.Memory; m != nil && m.Swap != nil {
		v, err := swapMax(m.Limit, *m.Swap)
		if err != nil {
			return nil, &oci.FieldError{Field: "linux.resources.memory.swap", Reason: err.Error()}
		}
		if v != nil {
			set("MemorySwapMax", *v)
		}
	}
	if c := r.CPU; c != nil {
		if c.Weight != nil && *c.Weight > 0 {
			set("CPUWeight", *c.Weight)
		}
		if c.Max != "" {
			quota, period, err := parseCPUMax(string(c.Max))
			if err != nil {
				return nil, &oci.FieldError{Field: "linux.resources.cpu.quota", Reason: err.Error()}
			}
			set("CPUQuotaPerSecUSec", quota)
			set("CPUQuotaPeriodUSec", period)
		}
		if err := setCPUSet(set, "AllowedCPUs", c.Cpus, "linux.resources.cpu.cpus"); err != nil {
			return nil, err
		}
		if err := setCPUSet(set, "AllowedMemoryNodes", c.Mems, "linux.resources.cpu.mems"); err != nil {
			return nil, err
		}
	}
	if p := r.Pids; p != nil {
		v := p.Max
		limit("TasksMax", &v)
	}
	if b := res.BlockIO; b != nil && b.Weight != nil && *b.Weight != 0 {
		w := uint64(*b.Weight)
		if w < 10 || w > 1000 {
			return nil, &oci.FieldError{Field: "linux.resources.blockIO.weight", Reason: fmt.Sprintf("%d is not in [10, 1000]", w)}
		}
		// blkio's 10..1000 onto io.weight's 1..10000, linearly
		set("IOWeight", 1+(w-10)*9999/990)
	}
	for k, v := range res.Unified {
		if err := unifiedProperty(set, k, strings.TrimSpace(v)); err != nil {
			return nil, err
		}
	}
	return props, nil
}

// swapMax is MemorySwapMax for the OCI memory.swap (memory+swap, v1's meaning) and limit:
// v2's swap.max is swap alone, so swap - limit; -1 in either is no limit; swap == limit is no
// swap at all (0). nil means nothing to set (swap 0: unset).
func swapMax(limit *int64, swap int64) (*uint64, error) {
	inf := uint64(infinity)
	switch {
	case swap == -1 || (limit != nil && *limit == -1):
		return &inf, nil
	case swap == 0:
		return nil, nil
	case swap < 0:
		return nil, fmt.Errorf("%d is neither -1 nor a non-negative number of bytes", swap)
	case limit == nil || *limit == 0:
		return nil, fmt.Errorf("%d needs memory.limit set: on cgroup v2 swap is limited apart from memory (swap - limit)", swap)
	case swap < *limit:
		return nil, fmt.Errorf("memory+swap %d is below memory.limit %d", swap, *limit)
	}
	v := uint64(swap - *limit)
	return &v, nil
}

// unifiedProperty maps one linux.resources.unified entry systemd has a property for; other
// keys are left to the direct writes.
func unifiedProperty(set func(string, any), key, v string) error {
	field := fmt.Sprintf("linux.resources.unified[%q]", key)
	bad := func(err error) error { return &oci.FieldError{Field: field, Reason: err.Error()} }
	names := map[string]string{
		"memory.min": "MemoryMin", "memory.low": "MemoryLow", "memory.high": "MemoryHigh",
		"memory.max": "MemoryMax", "memory.swap.max": "MemorySwapMax", "pids.max": "TasksMax",
	}
	switch key {
	case "memory.min", "memory.low", "memory.high", "memory.max", "memory.swap.max", "pids.max":
		n, err := parseMaxUint(v)
		if err != nil {
			return bad(err)
		}
		set(names[key], n)
	case "cpu.weight":
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < 1 || n > 10000 {
			return bad(fmt.Errorf("%q is not a weight in [1, 10000]", v))
		}
		set("CPUWeight", n)
	case "cpu.max":
		quota, period, err := parseCPUMax(v)
		if err != nil {
			return bad(err)
		}
		set("CPUQuotaPerSecUSec", quota)
		set("CPUQuotaPeriodUSec", period)
	case "cpuset.cpus":
		return setCPUSet(set, "AllowedCPUs", v, field)
	case "cpuset.mems":
		return setCPUSet(set, "AllowedMemoryNodes", v, field)
	}
	return nil
}

// parseMaxUint parses a cgroup v2 limit: "max" or a non-negative integer.
func parseMaxUint(v string) (uint64, error) {
	if v == "max" {
		return infinity, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is neither \"max\" nor a non-negative integer", v)
	}
	return n, nil
}

// parseCPUMax turns cpu.max ("<quota|max> [period]", as written by cgroup2 or given in
// unified) into systemd's CPUQuotaPerSecUSec (infinity for no quota, else rounded up to 10 ms)
// and CPUQuotaPeriodUSec.
func parseCPUMax(v string) (perSec, period uint64, err error) {
	f := strings.Fields(v)
	if len(f) < 1 || len(f) > 2 {
		return 0, 0, fmt.Errorf("%q is not \"<quota|max> [period]\"", v)
	}
	period = 100000
	if len(f) == 2 {
		period, err = strconv.ParseUint(f[1], 10, 64)
		if err != nil || period == 0 {
			return 0, 0, fmt.Errorf("period %q is not a positive integer", f[1])
		}
	}
	if f[0] == "max" || f[0] == "-1" {
		return infinity, period, nil
	}
	quota, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil || quota == 0 {
		return 0, 0, fmt.Errorf("quota %q is neither \"max\", -1 nor a positive integer", f[0])
	}
	if quota > math.MaxUint64/1000000 {
		return 0, 0, fmt.Errorf("quota %d is out of range", quota)
	}
	perSec = quota * 1000000 / period
	if rem := perSec % 10000; rem != 0 {
		perSec += 10000 - rem
	}
	return perSec, period, nil
}

// setCPUSet sets a cpuset list ("0-3,8") as the byte mask systemd's AllowedCPUs and
// AllowedMemoryNodes take (bit n%8 of byte n/8 is CPU or node n). An empty list sets nothing.
func setCPUSet(set func(string, any), name, list, field string) error {
	if strings.TrimSpace(list) == "" {
		return nil
	}
	mask, err := cpuSetMask(list)
	if err != nil {
		return &oci.FieldError{Field: field, Reason: err.Error()}
	}
	set(name, mask)
	return nil
}

// cpuSetMask parses a cpuset list (comma-separated numbers and inclusive ranges, the kernel's
// cpuset.cpus format) into a bitmask.
func cpuSetMask(list string) ([]byte, error) {
	var mask []byte
	for _, item := range strings.Split(strings.TrimSpace(list), ",") {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, "-")
		first, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q: %q is not a number or a range", list, item)
		}
		last := first
		if isRange {
			if last, err = strconv.ParseUint(hi, 10, 32); err != nil || last < first {
				return nil, fmt.Errorf("%q: %q is not a range low-high", list, item)
			}
		}
		if last >= maxCPUSetBit {
			return nil, fmt.Errorf("%q: %d is beyond the largest CPU or node number (%d)", list, last, maxCPUSetBit-1)
		}
		for n := first; n <= last; n++ {
			for uint64(len(mask)) <= n/8 {
				mask = append(mask, 0)
			}
			mask[n/8] |= 1 << (n % 8)
		}
	}
	return mask, nil
}
