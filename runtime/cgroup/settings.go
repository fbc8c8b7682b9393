package cgroup

// The translation of linux.resources into cgroup file writes, for v1 and v2. It is pure but
// for the reads it makes through a reader (which files this kernel has, a current limit that
// decides an order), so it is tested against a temp dir. apply.go writes the result.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// A setting is one value written to one cgroup control file.
type setting struct {
	ctl   string // v1: the controller hierarchy the file is in ("memory"); v2: ""
	file  string // the control file: "memory.limit_in_bytes"
	value string // what is written
	field string // the linux.resources field the value comes from, for errors
	// key is set for files that hold one line per key (a device, an interface): the key the
	// value sets ("8:0"). Restoring such a file writes that key's old line back, or unset
	// when the key had none.
	key, unset string
}

// reader is what planning may look at: which control files exist and what they hold now.
type reader interface {
	// exists reports whether the file exists; ctl "" with file "" asks whether the
	// controller's hierarchy (v1) is mounted.
	exists(ctl, file string) bool
	read(ctl, file string) (string, error)
}

// dirReader reads the files of a cgroup whose directory for controller ctl is dir(ctl)
// ("" when the controller is not mounted).
type dirReader func(ctl string) string

func (d dirReader) exists(ctl, file string) bool {
	dir := d(ctl)
	if dir == "" {
		return false
	}
	_, err := os.Lstat(filepath.Join(dir, file))
	return err == nil
}

func (d dirReader) read(ctl, file string) (string, error) {
	dir := d(ctl)
	if dir == "" {
		return "", fmt.Errorf("%s: controller %s is not mounted: %w", file, ctl, os.ErrNotExist)
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	return strings.TrimSpace(string(b)), err
}

const field = "linux.resources."

// errCannot says that a non-zero value cannot be applied on this host: the kernel lacks the
// file (a controller not mounted, a feature not built). errdefs.ErrNotImplemented.
func errCannot(f, format string, args ...any) error {
	return fmt.Errorf("%s%s: %s: %w", field, f, fmt.Sprintf(format, args...), errdefs.ErrNotImplemented)
}

func itoa(v int64) string                     { return strconv.FormatInt(v, 10) }
func utoa(v uint64) string                    { return strconv.FormatUint(v, 10) }
func set[T any](p *T) bool                    { return p != nil }
func nz[T int64 | uint64 | uint16](p *T) bool { return p != nil && *p != 0 }

// maxOr is v as a cgroup v2 limit: -1 is "max".
func maxOr(v int64) string {
	if v == -1 {
		return "max"
	}
	return itoa(v)
}

// planner accumulates the settings of one Create or Update.
type planner struct {
	h   reader
	out []setting
}

func (p *planner) add(ctl, file, value, f string) {
	p.out = append(p.out, setting{ctl: ctl, file: file, value: value, field: field + f})
}

func (p *planner) addKeyed(ctl, file, key, value, unset, f string) {
	p.out = append(p.out, setting{ctl: ctl, file: file, value: value, field: field + f, key: key, unset: unset})
}

// need fails with errCannot when ctl's file is missing.
func (p *planner) need(ctl, file, f string) error {
	if p.h.exists(ctl, file) {
		return nil
	}
	if !p.h.exists(ctl, "") {
		return errCannot(f, "the %s controller is not available for this cgroup", ctlName(ctl, file))
	}
	return errCannot(f, "this kernel has no %s", file)
}

func ctlName(ctl, file string) string {
	if ctl != "" {
		return ctl
	}
	c, _, _ := strings.Cut(file, ".")
	return c
}

// planV1 turns r into the writes for a v1 cgroup, in the order they are made: memory first
// (the kernel refuses a limit below usage, and nothing else is written yet then), devices
// last. h reads the cgroup's current files.
func planV1(r *specs.LinuxResources, h reader) ([]setting, error) {
	if len(r.Unified) > 0 {
		return nil, fmt.Errorf("%sunified needs cgroup v2 (this host runs cgroup v1): %w", field, errdefs.ErrInvalidArgument)
	}
	p := &planner{h: h}
	for _, step := range []func(*specs.LinuxResources) error{
		p.memoryV1, p.cpuV1, p.cpuset("cpuset"), p.pids("pids"), p.blkioV1, p.hugetlb("hugetlb", ".limit_in_bytes"),
		p.rdma("rdma"), p.networkV1, p.devicesV1,
	} {
		if err := step(r); err != nil {
			return nil, err
		}
	}
	return p.out, nil
}

// maxV1 is what v1 memory files read as when unlimited (PAGE_COUNTER_MAX pages).
func parseV1Limit(s string) uint64 {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return math.MaxUint64
	}
	return v
}

func (p *planner) memoryV1(r *specs.LinuxResources) error {
	m := r.Memory
	if m == nil {
		return nil
	}
	const ctl, limitFile, swapFile = "memory", "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"
	if (nz(m.Limit) || nz(m.Reservation) || nz(m.Swap) || set(m.DisableOOMKiller) || m.Swappiness != nil) && !p.h.exists(ctl, "") {
		return errCannot("memory", "the memory controller is not mounted")
	}
	limit, swap := int64(0), int64(0)
	if nz(m.Limit) {
		limit = *m.Limit
	}
	if nz(m.Swap) {
		swap = *m.Swap
	}
	hasSwap := p.h.exists(ctl, swapFile)
	// As runc: an unlimited memory limit with no swap limit lifts the swap limit too.
	if limit == -1 && swap == 0 && hasSwap {
		swap = -1
	}
	if swap != 0 && !hasSwap {
		if swap != -1 {
			return errCannot("memory.swap", "this kernel has no swap accounting (%s)", swapFile)
		}
		swap = 0
	}
	writeLimit := func() {
		if limit != 0 {
			p.add(ctl, limitFile, itoa(limit), "memory.limit")
		}
	}
	writeSwap := func() {
		if swap != 0 {
			p.add(ctl, swapFile, itoa(swap), "memory.swap")
		}
	}
	// The kernel keeps limit <= memsw at every step: raise memsw first when the new
	// memsw is above the current limit, else lower the limit first.
	switch {
	case limit != 0 && swap != 0:
		cur, err := p.h.read(ctl, limitFile)
		if err != nil {
			return fmt.Errorf("%smemory: %w", field, err)
		}
		if swap == -1 || parseV1Limit(cur) < uint64(swap) {
			writeSwap()
			writeLimit()
		} else {
			writeLimit()
			writeSwap()
		}
	case limit > 0 && hasSwap:
		cur, err := p.h.read(ctl, swapFile)
		if err != nil {
			return fmt.Errorf("%smemory: %w", field, err)
		}
		if uint64(limit) > parseV1Limit(cur) {
			return fmt.Errorf("%smemory.limit: %d is above the current memory+swap limit %s; set linux.resources.memory.swap as well: %w",
				field, limit, cur, errdefs.ErrInvalidArgument)
		}
		writeLimit()
	default:
		writeLimit()
		writeSwap()
	}
	if nz(m.Reservation) {
		p.add(ctl, "memory.soft_limit_in_bytes", itoa(*m.Reservation), "memory.reservation")
	}
	if s := m.Swappiness; s != nil && *s != math.MaxUint64 {
		p.add(ctl, "memory.swappiness", utoa(*s), "memory.swappiness")
	}
	if d := m.DisableOOMKiller; d != nil {
		v := "0"
		if *d {
			v = "1"
		}
		p.add(ctl, "memory.oom_control", v, "memory.disableOOMKiller")
	}
	// memory.kernel and memory.kernelTCP are ignored, as runc 1.2 and later do: kernels from
	// 6.1 on refuse kmem limits, and kernel memory is charged to memory.limit anyway.
	return nil
}

func (p *planner) cpuV1(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil {
		return nil
	}
	const ctl = "cpu"
	if nz(c.Shares) || nz(c.Quota) || nz(c.Period) || nz(c.Burst) || set(c.Idle) || nz(c.RealtimePeriod) || nz(c.RealtimeRuntime) {
		if !p.h.exists(ctl, "") {
			return errCannot("cpu", "the cpu controller is not mounted")
		}
	}
	if nz(c.Shares) {
		p.add(ctl, "cpu.shares", utoa(*c.Shares), "cpu.shares")
	}
	if nz(c.Period) {
		p.add(ctl, "cpu.cfs_period_us", utoa(*c.Period), "cpu.period")
	}
	if nz(c.Quota) {
		p.add(ctl, "cpu.cfs_quota_us", itoa(*c.Quota), "cpu.quota")
	}
	if nz(c.Burst) {
		if err := p.need(ctl, "cpu.cfs_burst_us", "cpu.burst"); err != nil {
			return err
		}
		p.add(ctl, "cpu.cfs_burst_us", utoa(*c.Burst), "cpu.burst")
	}
	if c.Idle != nil {
		if *c.Idle != 0 || p.h.exists(ctl, "cpu.idle") {
			if err := p.need(ctl, "cpu.idle", "cpu.idle"); err != nil {
				return err
			}
			p.add(ctl, "cpu.idle", itoa(*c.Idle), "cpu.idle")
		}
	}
	if nz(c.RealtimePeriod) || nz(c.RealtimeRuntime) {
		if !p.h.exists(ctl, "cpu.rt_runtime_us") {
			f := "cpu.realtimeRuntime"
			if !nz(c.RealtimeRuntime) {
				f = "cpu.realtimePeriod"
			}
			return errCannot(f, "this kernel has no realtime group scheduling (CONFIG_RT_GROUP_SCHED; no cpu.rt_runtime_us)")
		}
		// Period first: a new group's runtime is 0, which fits any period.
		if nz(c.RealtimePeriod) {
			p.add(ctl, "cpu.rt_period_us", utoa(*c.RealtimePeriod), "cpu.realtimePeriod")
		}
		if nz(c.RealtimeRuntime) {
			p.add(ctl, "cpu.rt_runtime_us", itoa(*c.RealtimeRuntime), "cpu.realtimeRuntime")
		}
	}
	return nil
}

func (p *planner) cpuset(ctl string) func(*specs.LinuxResources) error {
	return func(r *specs.LinuxResources) error {
		c := r.CPU
		if c == nil || (c.Cpus == "" && c.Mems == "") {
			return nil
		}
		if err := p.need(ctl, "cpuset.cpus", "cpu.cpus"); err != nil {
			return err
		}
		if c.Cpus != "" {
			p.add(ctl, "cpuset.cpus", c.Cpus, "cpu.cpus")
		}
		if c.Mems != "" {
			p.add(ctl, "cpuset.mems", c.Mems, "cpu.mems")
		}
		return nil
	}
}

func (p *planner) pids(ctl string) func(*specs.LinuxResources) error {
	return func(r *specs.LinuxResources) error {
		if r.Pids == nil || r.Pids.Limit == nil {
			return nil
		}
		if err := p.need(ctl, "pids.max", "pids.limit"); err != nil {
			return err
		}
		p.add(ctl, "pids.max", maxOr(*r.Pids.Limit), "pids.limit")
		return nil
	}
}

func devKey(d specs.LinuxBlockIODevice) string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// throttles lists the four throttle lists with their v1 file and v2 io.max key.
func throttles(b *specs.LinuxBlockIO) []struct {
	name, v1, v2 string
	list         []specs.LinuxThrottleDevice
} {
	return []struct {
		name, v1, v2 string
		list         []specs.LinuxThrottleDevice
	}{
		{"blockIO.throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps", b.ThrottleReadBpsDevice},
		{"blockIO.throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps", b.ThrottleWriteBpsDevice},
		{"blockIO.throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops", b.ThrottleReadIOPSDevice},
		{"blockIO.throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops", b.ThrottleWriteIOPSDevice},
	}
}

// blkioV1 writes weights to CFQ's blkio.weight* files or BFQ's blkio.bfq.weight* files,
// whichever this kernel has, and throttles to blkio.throttle.*.
func (p *planner) blkioV1(r *specs.LinuxResources) error {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	const ctl = "blkio"
	weightFile, deviceFile := "blkio.weight", "blkio.weight_device"
	if !p.h.exists(ctl, weightFile) && p.h.exists(ctl, "blkio.bfq.weight") {
		weightFile, deviceFile = "blkio.bfq.weight", "blkio.bfq.weight_device"
	}
	noSched := "no proportional-weight I/O scheduler (CFQ or BFQ) serves this cgroup (no %s)"
	if nz(b.Weight) {
		if !p.h.exists(ctl, weightFile) {
			return errCannot("blockIO.weight", noSched, weightFile)
		}
		p.add(ctl, weightFile, utoa(uint64(*b.Weight)), "blockIO.weight")
	}
	if nz(b.LeafWeight) {
		if err := p.need(ctl, "blkio.leaf_weight", "blockIO.leafWeight"); err != nil {
			return err
		}
		p.add(ctl, "blkio.leaf_weight", utoa(uint64(*b.LeafWeight)), "blockIO.leafWeight")
	}
	for i, d := range b.WeightDevice {
		f := fmt.Sprintf("blockIO.weightDevice[%d]", i)
		k := devKey(d.LinuxBlockIODevice)
		if nz(d.Weight) {
			if !p.h.exists(ctl, deviceFile) {
				return errCannot(f+".weight", noSched, deviceFile)
			}
			p.addKeyed(ctl, deviceFile, k, k+" "+utoa(uint64(*d.Weight)), k+" 0", f+".weight")
		}
		if nz(d.LeafWeight) {
			if err := p.need(ctl, "blkio.leaf_weight_device", f+".leafWeight"); err != nil {
				return err
			}
			p.addKeyed(ctl, "blkio.leaf_weight_device", k, k+" "+utoa(uint64(*d.LeafWeight)), k+" 0", f+".leafWeight")
		}
	}
	for _, t := range throttles(b) {
		for i, d := range t.list {
			f := fmt.Sprintf("%s[%d]", t.name, i)
			if err := p.need(ctl, t.v1, f); err != nil {
				return err
			}
			k := devKey(d.LinuxBlockIODevice)
			p.addKeyed(ctl, t.v1, k, k+" "+utoa(d.Rate), k+" 0", f)
		}
	}
	return nil
}

// hugePageSizes lists the page sizes this kernel has, as the spec names them ("2MB"), from
// /sys/kernel/mm/hugepages.
var hugePagesDir = "/sys/kernel/mm/hugepages"

func hugePageSizes() []string {
	ents, _ := os.ReadDir(hugePagesDir)
	var out []string
	for _, e := range ents {
		kb, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if n, err := strconv.ParseUint(strings.TrimSuffix(kb, "kB"), 10, 64); ok && err == nil {
			out = append(out, oci.HugePageSizeName(n<<10))
		}
	}
	return out
}

// hugetlb writes each page size's limit, and its reservation limit where the kernel has one
// (the spec: reservation limits "if supported").
func (p *planner) hugetlb(ctl, suffix string) func(*specs.LinuxResources) error {
	return func(r *specs.LinuxResources) error {
		for i, h := range r.HugepageLimits {
			f := fmt.Sprintf("hugepageLimits[%d]", i)
			limitFile := "hugetlb." + h.Pagesize + suffix
			if !p.h.exists(ctl, limitFile) {
				sizes := hugePageSizes()
				if !p.h.exists(ctl, "") || len(sizes) == 0 || !slices.Contains(sizes, h.Pagesize) {
					if !p.h.exists(ctl, "") {
						return errCannot(f, "the hugetlb controller is not available for this cgroup")
					}
					return errCannot(f+".pageSize", "this kernel has no %s huge pages (it has: %s)", h.Pagesize, strings.Join(sizes, ", "))
				}
				return errCannot(f, "this kernel has no %s", limitFile)
			}
			p.add(ctl, limitFile, utoa(h.Limit), f+".limit")
			if rsvd := "hugetlb." + h.Pagesize + ".rsvd" + suffix; p.h.exists(ctl, rsvd) {
				p.add(ctl, rsvd, utoa(h.Limit), f+".limit")
			}
		}
		return nil
	}
}

func (p *planner) rdma(ctl string) func(*specs.LinuxResources) error {
	return func(r *specs.LinuxResources) error {
		for _, dev := range slices.Sorted(mapKeys(r.Rdma)) {
			l := r.Rdma[dev]
			var parts []string
			if l.HcaHandles != nil {
				parts = append(parts, "hca_handle="+utoa(uint64(*l.HcaHandles)))
			}
			if l.HcaObjects != nil {
				parts = append(parts, "hca_object="+utoa(uint64(*l.HcaObjects)))
			}
			if len(parts) == 0 {
				continue
			}
			f := fmt.Sprintf("rdma[%q]", dev)
			if err := p.need(ctl, "rdma.max", f); err != nil {
				return err
			}
			p.addKeyed(ctl, "rdma.max", dev, dev+" "+strings.Join(parts, " "), dev+" hca_handle=max hca_object=max", f)
		}
		return nil
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (p *planner) networkV1(r *specs.LinuxResources) error {
	n := r.Network
	if n == nil {
		return nil
	}
	if n.ClassID != nil && *n.ClassID != 0 {
		if err := p.need("net_cls", "net_cls.classid", "network.classID"); err != nil {
			return err
		}
		p.add("net_cls", "net_cls.classid", utoa(uint64(*n.ClassID)), "network.classID")
	}
	for i, pr := range n.Priorities {
		f := fmt.Sprintf("network.priorities[%d]", i)
		if err := p.need("net_prio", "net_prio.ifpriomap", f); err != nil {
			return err
		}
		p.addKeyed("net_prio", "net_prio.ifpriomap", pr.Name, pr.Name+" "+utoa(uint64(pr.Priority)), pr.Name+" 0", f)
	}
	return nil
}

// deviceRule is the v1 devices.allow/deny line of a normalized rule: "c 1:3 rwm".
func deviceRule(d specs.LinuxDeviceCgroup) string {
	num := func(v *int64) string {
		if v == nil || *v == wildcard {
			return "*"
		}
		return itoa(*v)
	}
	return fmt.Sprintf("%s %s:%s %s", d.Type, num(d.Major), num(d.Minor), d.Access)
}

// devicesV1 writes the device rules. When the cgroup already has a default-deny list and the
// rules are the usual "deny all, then allow these", it writes only the difference (allow what
// is new, deny what is gone), as runc does: rewriting from "deny all" would, for a moment,
// deny a running container every device, and CRI sends the device rules with every Update.
func (p *planner) devicesV1(r *specs.LinuxResources) error {
	if len(r.Devices) == 0 {
		return nil
	}
	if err := p.need("devices", "devices.allow", "devices"); err != nil {
		return err
	}
	rules := normalizeDevices(r.Devices)
	if cur, err := p.h.read("devices", "devices.list"); err == nil {
		if allow, deny, ok := deviceDiff(cur, rules); ok {
			for _, l := range allow {
				p.add("devices", "devices.allow", l, "devices")
			}
			for _, l := range deny {
				p.add("devices", "devices.deny", l, "devices")
			}
			return nil
		}
	}
	for i, d := range rules {
		file := "devices.deny"
		if d.Allow {
			file = "devices.allow"
		}
		p.add("devices", file, deviceRule(d), fmt.Sprintf("devices[%d]", i))
	}
	return nil
}

// deviceDiff computes the writes that turn the v1 devices.list cur into the list rules give,
// when both are default-deny lists: cur is not "a *:* rwm", and rules are a deny of everything
// followed by allows of specific types. Entries are keyed by "type major:minor" with their
// access letters, as the kernel keeps them. ok is false when the shortcut does not apply.
func deviceDiff(cur string, rules []specs.LinuxDeviceCgroup) (allow, deny []string, ok bool) {
	if len(rules) == 0 || rules[0].Allow || deviceRule(rules[0]) != "a *:* rwm" {
		return nil, nil, false
	}
	want := map[string]string{}
	var order []string
	for _, d := range rules[1:] {
		if !d.Allow || d.Type == "a" {
			return nil, nil, false
		}
		line := deviceRule(d)
		key := line[:strings.LastIndexByte(line, ' ')]
		if _, seen := want[key]; !seen {
			order = append(order, key)
		}
		want[key] = mergeAccess(want[key], d.Access)
	}
	have := map[string]string{}
	var haveOrder []string
	for _, l := range strings.Split(cur, "\n") {
		if l == "" {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 || strings.HasPrefix(l, "a ") {
			return nil, nil, false // default-allow ("a *:* rwm"), or not a list we know
		}
		haveOrder = append(haveOrder, l[:i])
		have[l[:i]] = mergeAccess(have[l[:i]], l[i+1:])
	}
	for _, k := range order {
		if add := minusAccess(want[k], have[k]); add != "" {
			allow = append(allow, k+" "+add)
		}
	}
	for _, k := range haveOrder {
		if drop := minusAccess(have[k], want[k]); drop != "" {
			deny = append(deny, k+" "+drop)
			have[k] = want[k] // a key listed twice is denied once
		}
	}
	return allow, deny, true
}

// mergeAccess is the union of two access strings, in r, w, m order.
func mergeAccess(a, b string) string {
	var out []byte
	for _, c := range []byte("rwm") {
		if strings.IndexByte(a, c) >= 0 || strings.IndexByte(b, c) >= 0 {
			out = append(out, c)
		}
	}
	return string(out)
}

// minusAccess is the letters of a that b lacks, in r, w, m order.
func minusAccess(a, b string) string {
	var out []byte
	for _, c := range []byte("rwm") {
		if strings.IndexByte(a, c) >= 0 && strings.IndexByte(b, c) < 0 {
			out = append(out, c)
		}
	}
	return string(out)
}

// planV2 turns r into the writes for a v2 cgroup, in the order they are made: memory first,
// unified last (as runc, unified overrides what the typed fields wrote). Device rules are not
// files on v2; see devicesV2. Fields v2 has no file for (memory.swappiness,
// memory.disableOOMKiller, memory.kernel*, blockIO.leafWeight, network) are ignored, as
// runc ignores them; realtime values are refused (v2 has no realtime group scheduling).
func planV2(r *specs.LinuxResources, h reader) ([]setting, error) {
	p := &planner{h: h}
	for _, step := range []func(*specs.LinuxResources) error{
		p.memoryV2, p.cpuV2, p.cpuset(""), p.pids(""), p.ioV2, p.hugetlb("", ".max"), p.rdma(""), p.unified,
	} {
		if err := step(r); err != nil {
			return nil, err
		}
	}
	return p.out, nil
}

// swapV2 converts the spec's memory+swap limit into memory.swap.max (swap alone), as runc and
// crun do. memory is the memory limit in force after the update (-1 when unlimited).
func swapV2(swap, memory int64) (int64, error) {
	switch {
	case memory == -1 && swap == 0:
		return -1, nil // unlimited memory and no swap limit: unlimited swap too
	case swap == -1 || swap == 0:
		return swap, nil
	case memory == -1:
		return swap, nil
	case memory == 0:
		return 0, errors.New("a swap limit needs a memory limit")
	case swap < memory:
		return 0, fmt.Errorf("memory+swap %d is less than the memory limit %d", swap, memory)
	}
	return swap - memory, nil
}

func (p *planner) memoryV2(r *specs.LinuxResources) error {
	m := r.Memory
	if m == nil {
		return nil
	}
	limit, swap := int64(0), int64(0)
	if nz(m.Limit) {
		limit = *m.Limit
	}
	if nz(m.Swap) {
		swap = *m.Swap
	}
	if (limit != 0 || swap != 0 || nz(m.Reservation)) && !p.h.exists("", "memory.max") {
		return errCannot("memory", "the memory controller is not enabled for this cgroup")
	}
	if swap != 0 || limit == -1 {
		memory := limit
		if memory == 0 { // an Update of swap alone: against the limit in force
			cur, err := p.h.read("", "memory.max")
			if err != nil {
				return fmt.Errorf("%smemory.swap: %w", field, err)
			}
			memory = -1
			if cur != "max" {
				memory, _ = strconv.ParseInt(cur, 10, 64)
			}
		}
		v, err := swapV2(swap, memory)
		if err != nil {
			return fmt.Errorf("%smemory.swap: %v: %w", field, err, errdefs.ErrInvalidArgument)
		}
		value := maxOr(v)
		switch {
		case p.h.exists("", "memory.swap.max"):
			p.add("", "memory.swap.max", value, "memory.swap")
		case value != "max" && value != "0":
			// Without swap accounting there is no swap to limit: "max" and "0" hold anyway.
			return errCannot("memory.swap", "this kernel has no swap accounting (memory.swap.max)")
		}
	}
	if limit != 0 {
		p.add("", "memory.max", maxOr(limit), "memory.limit")
	}
	if nz(m.Reservation) {
		p.add("", "memory.low", maxOr(*m.Reservation), "memory.reservation")
	}
	return nil
}

// cpuWeight converts cpu.shares (2..262144, default 1024) into cpu.weight (1..10000,
// default 100). It is the quadratic fit runc 1.3 and crun use, which maps 2, 1024 and 262144
// onto 1, 100 and 10000 exactly (the older linear map gave 39 for 1024).
func cpuWeight(shares uint64) uint64 {
	switch {
	case shares == 0:
		return 0
	case shares <= 2:
		return 1
	case shares >= 262144:
		return 10000
	}
	l := math.Log2(float64(shares))
	return uint64(math.Ceil(math.Pow(10, (l*l+125*l)/612.0-7.0/34.0)))
}

// ioWeight converts a blkio weight (10..1000) into io.weight (1..10000), linearly, as runc
// and crun do.
func ioWeight(w uint16) uint64 {
	return 1 + (uint64(w)-10)*9999/990
}

func (p *planner) cpuV2(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil {
		return nil
	}
	if nz(c.RealtimeRuntime) || nz(c.RealtimePeriod) {
		f := "cpu.realtimeRuntime"
		if !nz(c.RealtimeRuntime) {
			f = "cpu.realtimePeriod"
		}
		return errCannot(f, "cgroup v2 has no realtime group scheduling")
	}
	if nz(c.Shares) {
		if err := p.need("", "cpu.weight", "cpu.shares"); err != nil {
			return err
		}
		p.add("", "cpu.weight", utoa(cpuWeight(*c.Shares)), "cpu.shares")
	}
	if c.Idle != nil {
		if *c.Idle != 0 || p.h.exists("", "cpu.idle") {
			if err := p.need("", "cpu.idle", "cpu.idle"); err != nil {
				return err
			}
			p.add("", "cpu.idle", itoa(*c.Idle), "cpu.idle")
		}
	}
	if nz(c.Quota) || nz(c.Period) {
		if err := p.need("", "cpu.max", "cpu.quota"); err != nil {
			return err
		}
		// cpu.max is "<quota|max> <period>": an Update of one of them keeps the other.
		cur, err := p.h.read("", "cpu.max")
		if err != nil {
			return fmt.Errorf("%scpu.quota: %w", field, err)
		}
		quota, period, _ := strings.Cut(cur, " ")
		if nz(c.Quota) {
			quota = maxOr(*c.Quota)
		}
		if nz(c.Period) {
			period = utoa(*c.Period)
		}
		if period == "" {
			period = "100000"
		}
		f := "cpu.quota"
		if !nz(c.Quota) {
			f = "cpu.period"
		}
		p.add("", "cpu.max", quota+" "+period, f)
	}
	if nz(c.Burst) {
		if err := p.need("", "cpu.max.burst", "cpu.burst"); err != nil {
			return err
		}
		p.add("", "cpu.max.burst", utoa(*c.Burst), "cpu.burst")
	}
	return nil
}

// ioV2 writes the weight to io.bfq.weight when BFQ serves the cgroup (same 10..1000 range
// as blkio) and else to io.weight, converted; per-device weights likewise; throttles to
// io.max.
func (p *planner) ioV2(r *specs.LinuxResources) error {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	bfq := p.h.exists("", "io.bfq.weight")
	if nz(b.Weight) {
		switch {
		case bfq:
			p.add("", "io.bfq.weight", utoa(uint64(*b.Weight)), "blockIO.weight")
		case p.h.exists("", "io.weight"):
			p.add("", "io.weight", "default "+utoa(ioWeight(*b.Weight)), "blockIO.weight")
		default:
			return errCannot("blockIO.weight", "no proportional-weight I/O control (io.weight or io.bfq.weight) serves this cgroup")
		}
	}
	for i, d := range b.WeightDevice {
		if !nz(d.Weight) {
			continue // leafWeight: v2 has none
		}
		f := fmt.Sprintf("blockIO.weightDevice[%d].weight", i)
		k := devKey(d.LinuxBlockIODevice)
		switch {
		case bfq:
			p.addKeyed("", "io.bfq.weight", k, k+" "+utoa(uint64(*d.Weight)), k+" default", f)
		case p.h.exists("", "io.weight"):
			p.addKeyed("", "io.weight", k, k+" "+utoa(ioWeight(*d.Weight)), k+" default", f)
		default:
			return errCannot(f, "no proportional-weight I/O control (io.weight or io.bfq.weight) serves this cgroup")
		}
	}
	for _, t := range throttles(b) {
		for i, d := range t.list {
			f := fmt.Sprintf("%s[%d]", t.name, i)
			if err := p.need("", "io.max", f); err != nil {
				return err
			}
			k := devKey(d.LinuxBlockIODevice)
			p.addKeyed("", "io.max", k, k+" "+t.v2+"="+utoa(d.Rate), k+" "+t.v2+"=max", f)
		}
	}
	return nil
}

// unified writes linux.resources.unified, keys in sorted order. A key must pass
// oci.CheckUnifiedKey and name a file this cgroup has (the kernel creates a controller's
// files only when the controller is enabled for the cgroup).
func (p *planner) unified(r *specs.LinuxResources) error {
	for _, k := range slices.Sorted(mapKeys(r.Unified)) {
		f := fmt.Sprintf("unified[%q]", k)
		if err := oci.CheckUnifiedKey(k); err != nil {
			return fmt.Errorf("%s%s: %v: %w", field, f, err, errdefs.ErrInvalidArgument)
		}
		if !p.h.exists("", k) {
			return fmt.Errorf("%s%s: this cgroup has no file %s (is the %s controller enabled?): %w",
				field, f, k, ctlName("", k), errdefs.ErrInvalidArgument)
		}
		p.add("", k, r.Unified[k], f)
	}
	return nil
}
