package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
)

// fieldFiles maps a cgroup control file (v1 and v2) to the OCI linux.resources field whose
// value is written there, so an error can name what the user has to fix.
var fieldFiles = map[string]string{
	// v1
	"cpu.shares":                       "cpu.shares",
	"cpu.cfs_quota_us":                 "cpu.quota",
	"cpu.cfs_period_us":                "cpu.period",
	"cpu.rt_runtime_us":                "cpu.realtimeRuntime",
	"cpu.rt_period_us":                 "cpu.realtimePeriod",
	"memory.limit_in_bytes":            "memory.limit",
	"memory.soft_limit_in_bytes":       "memory.reservation",
	"memory.memsw.limit_in_bytes":      "memory.swap",
	"memory.kmem.limit_in_bytes":       "memory.kernel",
	"memory.kmem.tcp.limit_in_bytes":   "memory.kernelTCP",
	"memory.oom_control":               "memory.disableOOMKiller",
	"memory.swappiness":                "memory.swappiness",
	"devices.allow":                    "devices",
	"devices.deny":                     "devices",
	"blkio.weight":                     "blockIO.weight",
	"blkio.leaf_weight":                "blockIO.leafWeight",
	"blkio.weight_device":              "blockIO.weightDevice",
	"blkio.leaf_weight_device":         "blockIO.weightDevice",
	"blkio.throttle.read_bps_device":   "blockIO.throttleReadBpsDevice",
	"blkio.throttle.write_bps_device":  "blockIO.throttleWriteBpsDevice",
	"blkio.throttle.read_iops_device":  "blockIO.throttleReadIOPSDevice",
	"blkio.throttle.write_iops_device": "blockIO.throttleWriteIOPSDevice",
	"net_cls.classid":                  "network.classID",
	"net_prio.ifpriomap":               "network.priorities",
	"rdma.max":                         "rdma",
	"pids.max":                         "pids.limit",
	// v1 cpuset and v2 share these names
	"cpuset.cpus": "cpu.cpus",
	"cpuset.mems": "cpu.mems",
	// v2 (hugetlb.<size>.* is handled in fieldFor)
	"cpu.weight":      "cpu.shares",
	"cpu.max":         "cpu.quota/cpu.period",
	"memory.max":      "memory.limit",
	"memory.swap.max": "memory.swap",
	"memory.low":      "memory.reservation",
	"io.max":          "blockIO.throttle*Device",
	"io.bfq.weight":   "blockIO.weight",
}

// fieldFor names the OCI linux.resources field written to the control file base name, or ""
// when file holds no resource.
func fieldFor(file string) string {
	if f, ok := fieldFiles[file]; ok {
		return "linux.resources." + f
	}
	if strings.HasPrefix(file, "hugetlb.") {
		return "linux.resources.hugepageLimits"
	}
	return ""
}

// classify turns an error from writing resource values into one that names the OCI field and
// carries an errdefs class. A value the kernel refuses (EINVAL, ERANGE, EOVERFLOW, or EBUSY,
// which memory.limit_in_bytes returns when usage cannot be reclaimed below the new limit)
// wraps errdefs.ErrInvalidArgument. Errors on files that hold no resource, and other errnos,
// are returned unchanged.
func classify(err error) error {
	var pe *fs.PathError
	if err == nil || !errors.As(err, &pe) {
		return err
	}
	field := fieldFor(filepath.Base(pe.Path))
	if field == "" {
		return err
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EINVAL, syscall.ERANGE, syscall.EOVERFLOW, syscall.EBUSY:
			return fmt.Errorf("%s: %w: %w", field, errdefs.ErrInvalidArgument, err)
		}
	}
	return fmt.Errorf("%s: %w", field, err)
}
