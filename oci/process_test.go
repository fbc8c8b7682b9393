package oci

import (
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func validProcess() *specs.Process {
	return &specs.Process{Args: []string{"sh"}, Cwd: "/"}
}

func intPtr(i int) *int { return &i }

// TestNewProcessPlanRejects checks each process validation rule.
func TestNewProcessPlanRejects(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(p *specs.Process)
		field  string
		reason string
	}{
		{"no args", func(p *specs.Process) { p.Args = []string{} }, "process.args", "empty"},
		{"empty program", func(p *specs.Process) { p.Args = []string{"", "x"} }, "process.args[0]", "empty"},
		{"NUL in arg", func(p *specs.Process) { p.Args = []string{"sh", "a\x00b"} }, "process.args[1]", "NUL"},
		{"no cwd", func(p *specs.Process) { p.Cwd = "" }, "process.cwd", "absolute"},
		{"relative cwd", func(p *specs.Process) { p.Cwd = "home" }, "process.cwd", "absolute"},
		{"env without =", func(p *specs.Process) { p.Env = []string{"A=1", "B"} }, "process.env[1]", "NAME=value"},
		{"env without name", func(p *specs.Process) { p.Env = []string{"=1"} }, "process.env[0]", "NAME=value"},
		{"NUL in env", func(p *specs.Process) { p.Env = []string{"A=\x00"} }, "process.env[0]", "NUL"},
		{"oom score too low", func(p *specs.Process) { p.OOMScoreAdj = intPtr(-1001) }, "process.oomScoreAdj", "-1000..1000"},
		{"oom score too high", func(p *specs.Process) { p.OOMScoreAdj = intPtr(1001) }, "process.oomScoreAdj", "-1000..1000"},
		{"unknown bounding cap", func(p *specs.Process) {
			p.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN", "CAP_KILL", "CAP_BPF", "CAP_FOO"}}
		}, "process.capabilities.bounding[3]", `unknown capability "CAP_FOO"`},
		{"lower-case cap", func(p *specs.Process) {
			p.Capabilities = &specs.LinuxCapabilities{Effective: []string{"cap_chown"}}
		}, "process.capabilities.effective[0]", `unknown capability "cap_chown"`},
		{"unknown ambient cap", func(p *specs.Process) {
			p.Capabilities = &specs.LinuxCapabilities{Ambient: []string{"CAP_41"}}
		}, "process.capabilities.ambient[0]", "unknown capability"},
		{"effective not permitted", func(p *specs.Process) {
			p.Capabilities = &specs.LinuxCapabilities{Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_CHOWN"}}
		}, "process.capabilities.effective[0]", "CAP_KILL is not in the permitted set"},
		{"inheritable not bounding", func(p *specs.Process) {
			p.Capabilities = &specs.LinuxCapabilities{Inheritable: []string{"CAP_KILL"}}
		}, "process.capabilities.inheritable[0]", "bounding"},
		{"ambient not inheritable", func(p *specs.Process) {
			p.Capabilities = &specs.LinuxCapabilities{
				Bounding: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL"},
			}
		}, "process.capabilities.ambient[0]", "both permitted and inheritable"},
		{"unknown rlimit", func(p *specs.Process) {
			p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1, Hard: 1}, {Type: "RLIMIT_FOO"}}
		}, "process.rlimits[1].type", `unknown rlimit "RLIMIT_FOO"`},
		{"duplicate rlimit", func(p *specs.Process) {
			p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_CORE"}, {Type: "RLIMIT_NOFILE"}, {Type: "RLIMIT_CORE"}}
		}, "process.rlimits[2].type", `duplicate rlimit "RLIMIT_CORE"`},
		{"soft above hard", func(p *specs.Process) {
			p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 2048, Hard: 1024}}
		}, "process.rlimits[0]", "soft limit 2048 exceeds hard limit 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validProcess()
			tt.edit(p)
			_, err := NewProcessPlan(p)
			wantFieldError(t, err, tt.field, tt.reason)
		})
	}
	_, err := NewProcessPlan(nil)
	wantFieldError(t, err, "process", "missing")
}

// TestCapabilitySets checks the translation of the five sets to bit masks.
func TestCapabilitySets(t *testing.T) {
	tests := []struct {
		name string
		caps *specs.LinuxCapabilities
		want Capabilities
	}{
		{"nil means none", nil, Capabilities{}},
		{"empty", &specs.LinuxCapabilities{}, Capabilities{}},
		{
			name: "docker default-ish, duplicates allowed",
			caps: &specs.LinuxCapabilities{
				Bounding:  []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"},
				Effective: []string{"CAP_CHOWN", "CAP_KILL"},
				Permitted: []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
			},
			want: Capabilities{
				Bounding:  1<<0 | 1<<5 | 1<<10,
				Effective: 1<<0 | 1<<5,
				Permitted: 1<<0 | 1<<5 | 1<<10,
			},
		},
		{
			name: "ambient, and the highest caps",
			caps: &specs.LinuxCapabilities{
				Bounding:    []string{"CAP_NET_BIND_SERVICE", "CAP_CHECKPOINT_RESTORE", "CAP_MAC_OVERRIDE"},
				Effective:   []string{"CAP_NET_BIND_SERVICE"},
				Inheritable: []string{"CAP_NET_BIND_SERVICE", "CAP_CHECKPOINT_RESTORE"},
				Permitted:   []string{"CAP_NET_BIND_SERVICE", "CAP_CHECKPOINT_RESTORE"},
				Ambient:     []string{"CAP_NET_BIND_SERVICE", "CAP_CHECKPOINT_RESTORE"},
			},
			want: Capabilities{
				Bounding:    1<<10 | 1<<40 | 1<<32,
				Effective:   1 << 10,
				Inheritable: 1<<10 | 1<<40,
				Permitted:   1<<10 | 1<<40,
				Ambient:     1<<10 | 1<<40,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validProcess()
			p.Capabilities = tt.caps
			pp, err := NewProcessPlan(p)
			if err != nil {
				t.Fatal(err)
			}
			if pp.Caps != tt.want {
				t.Errorf("got %+v, want %+v", pp.Caps, tt.want)
			}
		})
	}
}

// TestCapabilityTable checks that the table is complete and consistent:
// numbers 0..LastCap, each exactly once, and known anchors.
func TestCapabilityTable(t *testing.T) {
	seen := make(map[uint]string)
	for name, b := range capabilityBits {
		if prev, dup := seen[b]; dup {
			t.Errorf("%s and %s are both %d", name, prev, b)
		}
		seen[b] = name
	}
	for b := uint(0); b <= LastCap; b++ {
		if _, ok := seen[b]; !ok {
			t.Errorf("no capability %d", b)
		}
	}
	if len(capabilityBits) != LastCap+1 {
		t.Errorf("%d capabilities, want %d", len(capabilityBits), LastCap+1)
	}
	for name, want := range map[string]uint{
		"CAP_CHOWN": 0, "CAP_SETPCAP": 8, "CAP_SYS_ADMIN": 21, "CAP_SETFCAP": 31,
		"CAP_AUDIT_READ": 37, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
	} {
		if b, ok := CapabilityBit(name); !ok || b != want {
			t.Errorf("%s: got %d %v, want %d", name, b, ok, want)
		}
	}
}

// TestRlimits checks every rlimit name and that spec order is kept.
func TestRlimits(t *testing.T) {
	names := []string{
		"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
		"RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
		"RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
	}
	p := validProcess()
	var want []Rlimit
	for i := len(names) - 1; i >= 0; i-- {
		p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: names[i], Soft: uint64(i), Hard: ^uint64(0)})
		want = append(want, Rlimit{Resource: i, Soft: uint64(i), Hard: ^uint64(0)})
	}
	pp, err := NewProcessPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pp.Rlimits, want) {
		t.Errorf("got %v, want %v", pp.Rlimits, want)
	}
	if want[len(want)-1-unix.RLIMIT_NOFILE].Resource != unix.RLIMIT_NOFILE {
		t.Error("RLIMIT_NOFILE is not unix.RLIMIT_NOFILE")
	}
}

// TestNewProcessPlanCopies checks the translated fields and that the plan
// does not alias the spec.
func TestNewProcessPlanCopies(t *testing.T) {
	p := &specs.Process{
		Args: []string{"/bin/app", "-v"}, Env: []string{"A=1", "B=="}, Cwd: "/srv/./app/",
		User:            specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{3}},
		NoNewPrivileges: true, Terminal: true, OOMScoreAdj: intPtr(-1000),
	}
	pp, err := NewProcessPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	if pp.Cwd != "/srv/app" || !pp.NoNewPrivileges || !pp.Terminal || *pp.OOMScoreAdj != -1000 ||
		pp.User.UID != 1 || pp.User.GID != 2 || len(pp.Env) != 2 {
		t.Errorf("got %+v", pp)
	}
	p.Args[0], p.Env[0], p.User.AdditionalGids[0], *p.OOMScoreAdj = "x", "x", 9, 9
	if pp.Args[0] != "/bin/app" || pp.Env[0] != "A=1" || pp.User.AdditionalGids[0] != 3 || *pp.OOMScoreAdj != -1000 {
		t.Errorf("plan aliases the spec: %+v", pp)
	}
}

// TestProcessUserInvalidID checks that (uid_t)-1, which setresuid reads as
// "unchanged" (the process would keep root), is refused in every id field.
func TestProcessUserInvalidID(t *testing.T) {
	for name, u := range map[string]specs.User{
		"process.user.uid":               {UID: ^uint32(0)},
		"process.user.gid":               {GID: ^uint32(0)},
		"process.user.additionalGids[1]": {AdditionalGids: []uint32{5, ^uint32(0)}},
	} {
		_, err := NewProcessPlan(&specs.Process{Args: []string{"true"}, Cwd: "/", User: u})
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want InvalidArgument naming it", name, err)
		}
	}
	if _, err := NewProcessPlan(&specs.Process{Args: []string{"true"}, Cwd: "/", User: specs.User{UID: 4294967294, GID: 65534}}); err != nil {
		t.Errorf("largest valid uid refused: %v", err)
	}
}
