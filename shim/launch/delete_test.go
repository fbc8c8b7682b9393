package launch

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestDeleteResponseWire checks the hand-encoded DeleteResponse against the
// generated type: same bytes, and containerd's decoder reads the same values.
func TestDeleteResponseWire(t *testing.T) {
	for _, r := range []deleteResponse{
		{Pid: 4242, ExitStatus: 137, ExitedAt: time.Unix(1764300000, 123456789)},
		{Pid: 0, ExitStatus: 0, ExitedAt: time.Unix(1764300000, 0)},
		{Pid: 1<<32 - 1, ExitStatus: 255, ExitedAt: time.Unix(0, 1)},
		{},
	} {
		want := &taskAPI.DeleteResponse{Pid: r.Pid, ExitStatus: r.ExitStatus, ExitedAt: timestamppb.New(r.ExitedAt)}
		wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got := r.marshal()
		if !bytes.Equal(got, wantBytes) {
			t.Errorf("%+v: marshal = %x, generated type gives %x", r, got, wantBytes)
		}
		var dec taskAPI.DeleteResponse
		if err := proto.Unmarshal(got, &dec); err != nil {
			t.Fatalf("%+v: decode: %v", r, err)
		}
		if dec.Pid != r.Pid || dec.ExitStatus != r.ExitStatus || !dec.ExitedAt.AsTime().Equal(r.ExitedAt) {
			t.Errorf("%+v: decoded as %v", r, &dec)
		}
	}
}

// TestUnmountRecursive mounts two tmpfs, one inside the other, under a
// target and checks both are gone afterwards; a target that is not a mount
// point, or does not exist, is fine.
func TestUnmountRecursive(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unmountRecursive(target); err != nil {
		t.Fatalf("not mounted: %v", err)
	}
	if err := unmountRecursive(filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("missing: %v", err)
	}
	if err := unix.Mount("tmpfs", target, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(target, "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", inner, "tmpfs", 0, ""); err != nil {
		unix.Unmount(target, unix.MNT_DETACH)
		t.Fatal(err)
	}
	if err := unmountRecursive(target); err != nil {
		t.Fatal(err)
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(target))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 0 {
		t.Fatalf("left mounted: %v", mounts)
	}
}

// TestDaemonPathFromPATH: a shim copied elsewhere on its own (containerd's
// runtime path may name any copy) finds the daemon on PATH.
func TestDaemonPathFromPATH(t *testing.T) {
	dir := t.TempDir()
	daemon := filepath.Join(dir, DaemonBinary)
	if err := os.WriteFile(daemon, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	got, err := DaemonPath()
	if err != nil || got != daemon {
		t.Fatalf("DaemonPath() = %q, %v; want %q from PATH", got, err, daemon)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := DaemonPath(); err == nil || !strings.Contains(err.Error(), "must be installed beside") {
		t.Fatalf("without a daemon: %v, want an error saying where it must be", err)
	}
}
