package cgroup

import (
	"testing"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/errdefs"
)

// TestResolve checks how cgroupsPath maps to a cgroup path and which paths are refused.
func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		err  error
	}{
		{in: "/box-test-x/ctr", want: "/box-test-x/ctr"},
		{in: "/a//b/./c/", want: "/a/b/c"},
		{in: "ctr", want: "/box/ctr"},
		{in: "k8s/pod/ctr", want: "/box/k8s/pod/ctr"},
		{in: "./ctr", want: "/box/ctr"},
		{in: "", err: errdefs.ErrInvalidArgument},
		{in: "../escape", err: errdefs.ErrInvalidArgument},
		{in: "/a/../../etc", err: errdefs.ErrInvalidArgument},
		{in: "a/..", err: errdefs.ErrInvalidArgument},
		{in: "..", err: errdefs.ErrInvalidArgument},
		{in: "/", err: errdefs.ErrInvalidArgument},
		{in: ".", err: errdefs.ErrInvalidArgument},
		{in: "/sys/fs/cgroup/memory/x", err: errdefs.ErrInvalidArgument},
		// the systemd driver's form: New hands it to NewSystemd, resolve never takes it
		{in: "system.slice:cri-containerd:abc", err: errdefs.ErrInvalidArgument},
		{in: "/a:b:c", want: "/a:b:c"}, // an absolute path is never a systemd unit
	} {
		got, err := resolve(tc.in)
		if tc.err != nil {
			if !isClass(err, tc.err) {
				t.Errorf("resolve(%q) = %q, %v; want %v", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("resolve(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func isClass(err, class error) bool {
	switch class {
	case errdefs.ErrInvalidArgument:
		return errdefs.IsInvalidArgument(err)
	case errdefs.ErrNotImplemented:
		return errdefs.IsNotImplemented(err)
	}
	return false
}

// TestNewRejectsBadPathWithoutTouchingCgroups checks New and Load refuse bad paths before
// looking at the host.
func TestNewRejectsBadPathWithoutTouchingCgroups(t *testing.T) {
	for _, p := range []string{"", "../escape", "/x/../../y"} {
		if _, err := New(p, nil); !errdefs.IsInvalidArgument(err) {
			t.Errorf("New(%q) error = %v; want InvalidArgument", p, err)
		}
		if _, err := Load(p); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Load(%q) error = %v; want InvalidArgument", p, err)
		}
	}
}

// TestModeName checks hybrid hosts are treated as v1, as containerd does.
func TestModeName(t *testing.T) {
	for m, want := range map[cgroups.CGMode]string{
		cgroups.Legacy:      ModeV1,
		cgroups.Hybrid:      ModeV1,
		cgroups.Unified:     ModeV2,
		cgroups.Unavailable: "",
	} {
		if got := modeName(m); got != want {
			t.Errorf("modeName(%v) = %q; want %q", m, got, want)
		}
	}
}
