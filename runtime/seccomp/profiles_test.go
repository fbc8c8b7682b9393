package seccomp

import (
	"testing"

	cseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	mseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultCaps is Docker's and containerd's default capability set (no CAP_SYS_ADMIN).
var defaultCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

func specWithCaps(caps ...string) *specs.Spec {
	return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}}}
}

// probes returns seccomp_data for every syscall every ABI knows, with
// argument values that the default profiles' rules distinguish.
func probes() []data {
	argVals := []uint64{0, 8, 0x20008, 0xffffffff, 0x1_00000000, unix.AF_INET, unix.AF_ALG, unix.AF_VSOCK,
		uint64(unix.SIGCHLD), unix.CLONE_NEWUSER | uint64(unix.SIGCHLD), unix.CLONE_NEWNS}
	var out []data
	for _, a := range []*arch{archX86_64, archX32, archI386} {
		for _, n := range a.syscalls {
			for _, v := range argVals {
				out = append(out, mk(a.audit, n, []uint64{v, v}))
			}
		}
	}
	for _, n := range []uint32{499, 500, 1000, x32Bit + 600, 0xffffffff} {
		out = append(out, x86(n), i386(n))
	}
	return out
}

// checkAgainstReference compares the program with the reference model on probes().
func checkAgainstReference(t *testing.T, s *specs.LinuxSeccomp, v vm) {
	t.Helper()
	bad := 0
	for _, d := range probes() {
		if got, want := v.run(t, d), reference(s, d); got != want {
			t.Errorf("%+v: got %#x, want %#x", d, got, want)
			if bad++; bad > 10 {
				t.Fatal("too many mismatches")
			}
		}
	}
}

// containerd's default profile compiles under the kernel's limits and does what it says.
func TestContainerdDefaultProfile(t *testing.T) {
	s := cseccomp.DefaultProfile(specWithCaps(defaultCaps...))
	p, v := compileVM(t, s)
	t.Logf("containerd default profile (%d entries, arches %v): %d instructions", len(s.Syscalls), s.Architectures, len(p.Filter))
	eperm := errno(unix.EPERM)
	for _, tc := range []struct {
		name string
		d    data
		want action
	}{
		{"read", x86(unix.SYS_READ), retAllow},
		{"execve", x86(unix.SYS_EXECVE), retAllow},
		{"kexec_load", x86(unix.SYS_KEXEC_LOAD), eperm},
		{"mount", x86(unix.SYS_MOUNT), eperm},
		{"unshare", x86(unix.SYS_UNSHARE), eperm},
		{"clone fork", x86(unix.SYS_CLONE, uint64(unix.SIGCHLD)), retAllow},
		{"clone thread", x86(unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_FS|unix.CLONE_FILES|unix.CLONE_SIGHAND|unix.CLONE_THREAD), retAllow},
		{"clone CLONE_NEWUSER", x86(unix.SYS_CLONE, unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), eperm},
		{"clone CLONE_NEWNS", x86(unix.SYS_CLONE, unix.CLONE_NEWNS), eperm},
		{"clone3", x86(unix.SYS_CLONE3), errno(unix.ENOSYS)},
		{"personality 0", x86(unix.SYS_PERSONALITY, 0), retAllow},
		{"personality 0x8", x86(unix.SYS_PERSONALITY, 8), retAllow},
		{"personality query", x86(unix.SYS_PERSONALITY, 0xffffffff), retAllow},
		{"personality 5", x86(unix.SYS_PERSONALITY, 5), eperm},
		{"personality high word", x86(unix.SYS_PERSONALITY, 0x1_00000000), eperm},
		{"socket AF_INET", x86(unix.SYS_SOCKET, unix.AF_INET), retAllow},
		{"socket AF_ALG", x86(unix.SYS_SOCKET, unix.AF_ALG), eperm},
		{"socket AF_VSOCK", x86(unix.SYS_SOCKET, unix.AF_VSOCK), eperm},
		{"unknown 1000", x86(1000), retENOSYS},
		{"i386 read", i386(nr(t, archI386, "read")), retAllow},
		{"i386 kexec_load", i386(nr(t, archI386, "kexec_load")), eperm},
		{"x32 read", x86(nr(t, archX32, "read")), retAllow},
		{"aarch64", mk(unix.AUDIT_ARCH_AARCH64, 63, nil), retKillProcess},
	} {
		if got := v.run(t, tc.d); got != tc.want {
			t.Errorf("%s: got %#x, want %#x", tc.name, got, tc.want)
		}
	}
	checkAgainstReference(t, s, v)
}

// With CAP_SYS_ADMIN containerd's profile allows mount and unrestricted clone.
func TestContainerdDefaultProfileAdmin(t *testing.T) {
	s := cseccomp.DefaultProfile(specWithCaps(append(defaultCaps, "CAP_SYS_ADMIN")...))
	p, v := compileVM(t, s)
	t.Logf("containerd default profile with CAP_SYS_ADMIN: %d instructions", len(p.Filter))
	for _, d := range []data{x86(unix.SYS_MOUNT), x86(unix.SYS_CLONE, unix.CLONE_NEWUSER), x86(unix.SYS_CLONE3)} {
		if got := v.run(t, d); got != retAllow {
			t.Errorf("%+v: got %#x", d, got)
		}
	}
	checkAgainstReference(t, s, v)
}

// Docker's default profile (moby/profiles) compiles under the limits and matches the reference.
func TestDockerDefaultProfile(t *testing.T) {
	s, err := mseccomp.GetDefaultProfile(specWithCaps(defaultCaps...))
	if err != nil {
		t.Fatal(err)
	}
	p, v := compileVM(t, s)
	t.Logf("Docker default profile (%d entries): %d instructions", len(s.Syscalls), len(p.Filter))
	for _, tc := range []struct {
		d    data
		want action
	}{
		{x86(unix.SYS_READ), retAllow},
		{x86(unix.SYS_KEXEC_LOAD), errno(unix.EPERM)},
		{x86(unix.SYS_CLONE, unix.CLONE_NEWUSER), errno(unix.EPERM)},
		{x86(unix.SYS_CLONE, uint64(unix.SIGCHLD)), retAllow},
		{x86(unix.SYS_CLONE3), errno(unix.ENOSYS)},
	} {
		if got := v.run(t, tc.d); got != tc.want {
			t.Errorf("%+v: got %#x, want %#x", tc.d, got, tc.want)
		}
	}
	checkAgainstReference(t, s, v)
}
