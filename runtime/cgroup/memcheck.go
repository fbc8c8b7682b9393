package cgroup

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// usageOf reads a memory usage file ("memory.current", "memory.usage_in_bytes").
func usageOf(fs reader, ctl, file string) (uint64, error) {
	s, err := fs.read(ctl, file)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(s, 10, 64)
}

func errBelowUsage(limit int64, usage uint64) error {
	return fmt.Errorf("linux.resources.memory.limit: %d is below the cgroup's current memory usage %d: %w",
		limit, usage, errdefs.ErrFailedPrecondition)
}

// checkBeforeUpdate implements memory.checkBeforeUpdate: "If enabled (true), runtime MAY check
// if a new memory limit is lower than the current usage, and MUST reject the new limit." A
// usage that cannot be read (no memory controller, a new cgroup) passes, as in runc.
func checkBeforeUpdate(r *specs.LinuxResources, fs reader, ctl, usageFile string) error {
	m := r.Memory
	if m == nil || m.CheckBeforeUpdate == nil || !*m.CheckBeforeUpdate || m.Limit == nil || *m.Limit <= 0 {
		return nil
	}
	usage, err := usageOf(fs, ctl, usageFile)
	if err != nil {
		return nil
	}
	if uint64(*m.Limit) <= usage {
		return errBelowUsage(*m.Limit, usage)
	}
	return nil
}

// fitMemoryV2 makes room for a lower memory.max on v2, where the kernel does not refuse a
// limit below usage the way v1 does (EBUSY) but reclaims and then OOM-kills the cgroup's
// processes. When the usage is above the new limit:
//
//   - if what the cgroup could give back (page cache and reclaimable slab; anonymous memory
//     only where it can be swapped) does not cover the difference, the update is refused at
//     once with ErrFailedPrecondition;
//   - else the difference is reclaimed first (memory.reclaim, kernel 5.19 and later), and the
//     update is refused if the usage is still above the limit.
//
// Nothing is written to a limit file before this passes.
func fitMemoryV2(r *specs.LinuxResources, fs fsys) error {
	m := r.Memory
	if m == nil || m.Limit == nil || *m.Limit <= 0 {
		return nil
	}
	limit := uint64(*m.Limit)
	usage, err := usageOf(fs, "", "memory.current")
	if err != nil || usage <= limit {
		return nil
	}
	if reclaimableV2(fs) < usage-limit || !fs.exists("", "memory.reclaim") {
		return errBelowUsage(*m.Limit, usage)
	}
	err = fs.write("", "memory.reclaim", strconv.FormatUint(usage-limit, 10))
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		return fmt.Errorf("linux.resources.memory.limit: reclaim %d bytes to fit %d: %w", usage-limit, limit, err)
	}
	if usage, err = usageOf(fs, "", "memory.current"); err == nil && usage > limit {
		return errBelowUsage(*m.Limit, usage)
	}
	return nil
}

// reclaimableV2 estimates how much of a v2 cgroup's memory reclaim could free: its page cache
// and reclaimable slab, plus its anonymous memory if it may swap (memory.swap.max is not 0
// and the host has swap).
func reclaimableV2(fs reader) uint64 {
	stat, err := fs.read("", "memory.stat")
	if err != nil {
		return 0
	}
	kv := map[string]uint64{}
	for _, l := range strings.Split(stat, "\n") {
		k, v, _ := strings.Cut(l, " ")
		kv[k], _ = strconv.ParseUint(v, 10, 64)
	}
	n := kv["file"] + kv["slab_reclaimable"]
	if swap, err := fs.read("", "memory.swap.max"); err == nil && swap != "0" && hostHasSwap() {
		n += kv["anon"]
	}
	return n
}

func hostHasSwap() bool {
	b, err := os.ReadFile("/proc/swaps")
	return err == nil && strings.Count(string(b), "\n") > 1
}
