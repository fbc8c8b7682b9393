package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime"
	"github.com/boxrt/containerd-shim-box-v1/runtime/cgroup"
	"github.com/boxrt/containerd-shim-box-v1/shim/launch/deleted"
)

// deleteAction is the "delete" action: containerd runs it when a daemon is
// gone (crashed, killed) or never came up, to release what the container
// held. It kills what is left of the container, removes its cgroup, unmounts
// its rootfs and prints the DeleteResponse. Running it twice is harmless.
func deleteAction(f Flags) error {
	bundle := f.Bundle
	if bundle == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		bundle = wd
	}
	// The daemon deleted the task itself (the usual case: containerd runs
	// this action after every task): answer what it recorded. The C
	// constructor (shim/launch/deleted) normally did this already.
	if resp, ok := deleted.Read(bundle, f.ID); ok {
		removeStaleSocket(bundle)
		_, err := os.Stdout.Write(resp)
		return err
	}
	resp, err := cleanupBundle(bundle)
	if _, werr := os.Stdout.Write(resp.marshal()); werr != nil {
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
func cleanupBundle(bundle string) (deleteResponse, error) {
	resp := deleteResponse{ExitStatus: 128 + uint32(unix.SIGKILL), ExitedAt: time.Now()}
	var errs []error

	var st BundleState
	if err := readJSON(filepath.Join(bundle, StateFile), &st); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("read %s: %w", StateFile, err))
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
	if st.Pid > 0 {
		// A container was created and its daemon did not delete it: run
		// its OCI poststop hooks, after its cgroup and before its rootfs.
		if err := poststop(bundle); err != nil {
			errs = append(errs, err)
		}
	}
	if err := unmountRecursive(filepath.Join(bundle, "rootfs")); err != nil {
		errs = append(errs, fmt.Errorf("unmount rootfs: %w", err))
	}
	var ex ExitState
	if err := readJSON(filepath.Join(bundle, ExitFile), &ex); err == nil {
		resp.ExitStatus = uint32(ex.Status)
		resp.ExitedAt = ex.ExitedAt
	}
	removeStaleSocket(bundle)
	return resp, errors.Join(errs...)
}

// removeStaleSocket removes the socket of the bundle's daemon when nothing
// listens on it any more; a daemon still serving (a group's) keeps it.
func removeStaleSocket(bundle string) {
	if addr, err := os.ReadFile(filepath.Join(bundle, "address")); err == nil && !canConnect(string(addr)) {
		_ = removeSocket(string(addr))
	}
}

// poststop runs the poststop hooks of the bundle's config.json.
func poststop(bundle string) error {
	spec, err := oci.Load(bundle)
	if err != nil {
		return fmt.Errorf("poststop hooks: %w", err)
	}
	return runtime.PoststopAfterCrash(context.Background(), filepath.Base(bundle), bundle, spec)
}

// EncodeDeleteResponse is the DeleteResponse the delete action prints, for
// the record a daemon leaves with deleted.Write.
func EncodeDeleteResponse(pid, exitStatus uint32, exitedAt time.Time) []byte {
	return deleteResponse{Pid: pid, ExitStatus: exitStatus, ExitedAt: exitedAt}.marshal()
}

// deleteResponse is the task API's DeleteResponse, which the delete action
// prints. It is encoded here with protowire so this binary links no API
// package: containerd.task.v3.DeleteResponse has pid = 1, exit_status = 2
// and exited_at = 3 (a google.protobuf.Timestamp: seconds = 1, nanos = 2).
// A test checks the bytes against the generated type.
type deleteResponse struct {
	Pid, ExitStatus uint32
	ExitedAt        time.Time
}

func (r deleteResponse) marshal() []byte {
	var b []byte
	if r.Pid != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(r.Pid))
	}
	if r.ExitStatus != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(r.ExitStatus))
	}
	var ts []byte
	if s := r.ExitedAt.Unix(); s != 0 {
		ts = protowire.AppendTag(ts, 1, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(s))
	}
	if n := r.ExitedAt.Nanosecond(); n != 0 {
		ts = protowire.AppendTag(ts, 2, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(n))
	}
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	return protowire.AppendBytes(b, ts)
}

// killInit kills the recorded init process if it is still the same process.
func killInit(st BundleState) error {
	if st.Pid <= 0 {
		return nil
	}
	fd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil {
		return nil // gone
	}
	defer unix.Close(fd)
	if t, err := ProcStartTime(st.Pid); err != nil || t != st.StartTime {
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
