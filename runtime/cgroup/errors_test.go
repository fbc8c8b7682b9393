package cgroup

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
)

// TestClassify checks refused values become InvalidArgument errors that name the OCI field,
// and that other errors keep their identity.
func TestClassify(t *testing.T) {
	pathErr := func(file string, errno syscall.Errno) error {
		return &fs.PathError{Op: "write", Path: "/sys/fs/cgroup/cpu/x/" + file, Err: errno}
	}
	for _, tc := range []struct {
		err       error
		invalid   bool
		wantField string
	}{
		{err: pathErr("cpu.cfs_quota_us", syscall.EINVAL), invalid: true, wantField: "linux.resources.cpu.quota"},
		{err: pathErr("memory.limit_in_bytes", syscall.EBUSY), invalid: true, wantField: "linux.resources.memory.limit"},
		{err: pathErr("pids.max", syscall.EINVAL), invalid: true, wantField: "linux.resources.pids.limit"},
		{err: pathErr("hugetlb.2MB.limit_in_bytes", syscall.EINVAL), invalid: true, wantField: "linux.resources.hugepageLimits"},
		{err: pathErr("cpu.max", syscall.ERANGE), invalid: true, wantField: "linux.resources.cpu.quota/cpu.period"},
		{err: pathErr("cpu.rt_runtime_us", syscall.ENOENT), wantField: "linux.resources.cpu.realtimeRuntime"},
		{err: pathErr("cgroup.procs", syscall.EINVAL)},
		{err: errors.New("plain")},
	} {
		got := classify(tc.err)
		if errdefs.IsInvalidArgument(got) != tc.invalid {
			t.Errorf("classify(%v) = %v; InvalidArgument = %v, want %v", tc.err, got, !tc.invalid, tc.invalid)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("classify(%v) = %v; does not wrap the original", tc.err, got)
		}
		if tc.wantField != "" && !strings.Contains(got.Error(), tc.wantField) {
			t.Errorf("classify(%v) = %v; does not name %s", tc.err, got, tc.wantField)
		}
		if tc.wantField == "" && got != tc.err {
			t.Errorf("classify(%v) = %v; want it unchanged", tc.err, got)
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
}
