package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	cshim "github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/boxrt/containerd-shim-box-v1/runtime/cgroup"
)

// deleteAction is the "delete" action: containerd runs it when a daemon is
// gone (crashed, killed) or never came up, to release what the container
// held. It kills what is left of the container, removes its cgroup, unmounts
// its rootfs and prints the DeleteResponse. Running it twice is harmless.
func deleteAction(ctx context.Context, f flags) error {
	bundle := f.bundle
	if bundle == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		bundle = wd
	}
	resp, err := cleanupBundle(bundle)
	out, merr := proto.Marshal(resp)
	if merr != nil {
		return merr
	}
	if _, werr := os.Stdout.Write(out); werr != nil {
		return werr
	}
	if err != nil {
		// The response is what containerd needs; leftovers are reported on
		// stderr, which containerd logs as warnings.
		fmt.Fprintf(os.Stderr, "containerd-shim-box-v1: cleanup %s: %v\n", bundle, err)
	}
	return nil
}

// cleanupBundle releases everything the bundle's container holds and
// returns the best exit information it has.
func cleanupBundle(bundle string) (*taskAPI.DeleteResponse, error) {
	resp := &taskAPI.DeleteResponse{ExitStatus: 128 + uint32(unix.SIGKILL), ExitedAt: protobuf.ToTimestamp(time.Now())}
	var errs []error

	var st bundleState
	if err := readJSON(filepath.Join(bundle, stateFile), &st); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("read %s: %w", stateFile, err))
	}
	resp.Pid = uint32(st.Pid)
	if err := killInit(st); err != nil {
		errs = append(errs, err)
	}
	if st.CgroupsPath != "" {
		if err := removeCgroup(st.CgroupsPath); err != nil {
			errs = append(errs, err)
		}
	}
	if err := mount.UnmountRecursive(filepath.Join(bundle, "rootfs"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("unmount rootfs: %w", err))
	}
	var ex exitState
	if err := readJSON(filepath.Join(bundle, exitFile), &ex); err == nil {
		resp.ExitStatus = uint32(ex.Status)
		resp.ExitedAt = protobuf.ToTimestamp(ex.ExitedAt)
	}
	if addr, err := os.ReadFile(filepath.Join(bundle, "address")); err == nil && !cshim.CanConnect(string(addr)) {
		_ = cshim.RemoveSocket(string(addr))
	}
	return resp, errors.Join(errs...)
}

// killInit kills the recorded init process if it is still the same process.
func killInit(st bundleState) error {
	if st.Pid <= 0 {
		return nil
	}
	fd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil {
		return nil // gone
	}
	defer unix.Close(fd)
	if t, err := procStartTime(st.Pid); err != nil || t != st.StartTime {
		return nil // recycled pid: not ours
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill init %d: %w", st.Pid, err)
	}
	return nil
}

// removeCgroup kills every process left in the cgroup and removes it.
func removeCgroup(path string) error {
	cg, err := cgroup.Load(path)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("load cgroup %s: %w", path, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := cg.Pids()
		if err != nil || len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: %d processes survive SIGKILL", path, len(pids))
		}
		_ = cg.Kill(unix.SIGKILL)
		time.Sleep(20 * time.Millisecond)
	}
	return cg.Delete()
}
