package process

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runChild runs the test binary as a child that prepares and runs p, with
// extra environment variables env, in a private mount namespace. It returns
// the child's output and exit status.
func runChild(t *testing.T, p specs.Process, env ...string) (string, int) {
	t.Helper()
	spec, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envChild+"="+string(spec))
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatal(err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// writeEtc writes a passwd and a group file into a new directory for the
// child to mount over /etc's.
func writeEtc(t *testing.T, passwd, group string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{"passwd": passwd, "group": group} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// statusScript prints the shell's own /proc status and the limits, home,
// cwd and umask it got.
const statusScript = `while IFS= read -r l; do echo "$l"; done < /proc/$$/status
read adj < /proc/$$/oom_score_adj
echo "oom=$adj"
echo "nofile=$(ulimit -n) hardnofile=$(ulimit -H -n)"
echo "home=$HOME"
echo "cwd=$(pwd)"
echo "umask=$(umask)"`

// TestPrepareCredentials checks that the exec'd process has exactly the
// planned uid, gids, groups, capability sets, no_new_privs, rlimit,
// oom_score_adj, umask, HOME and cwd.
func TestPrepareCredentials(t *testing.T) {
	testutil.RequiresRoot(t)
	etc := writeEtc(t,
		"root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000::/home/tester:/bin/sh\n",
		"root:x:0:\nmedia:x:500:other,tester\ntester:x:1000:\nnotmine:x:600:other\n")
	umask := uint32(0o027)
	oom := 500
	p := specs.Process{
		User: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{3000, 2000, 500}, Umask: &umask},
		Args: []string{"sh", "-c", statusScript},
		Env:  []string{"PATH=/usr/bin:/bin"},
		Cwd:  "/tmp",
		Capabilities: &specs.LinuxCapabilities{
			Bounding:    []string{"CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_BIND_SERVICE"},
			Effective:   []string{"CAP_KILL", "CAP_NET_BIND_SERVICE"},
			Permitted:   []string{"CAP_KILL", "CAP_NET_BIND_SERVICE"},
			Inheritable: []string{"CAP_NET_BIND_SERVICE"},
			Ambient:     []string{"CAP_NET_BIND_SERVICE"},
		},
		Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1234, Hard: 2048}},
		NoNewPrivileges: true,
		OOMScoreAdj:     &oom,
	}
	out, status := runChild(t, p, envEtc+"="+etc)
	if status != 0 {
		t.Fatalf("child exited %d:\n%s", status, out)
	}
	// A non-root program without file capabilities keeps only its ambient
	// capabilities in the permitted and effective sets across execve.
	wantLines(t, out,
		"Uid:\t1000\t1000\t1000\t1000",
		"Gid:\t1000\t1000\t1000\t1000",
		"Groups:\t500 2000 3000",
		"CapInh:\t0000000000000400",
		"CapPrm:\t0000000000000400",
		"CapEff:\t0000000000000400",
		"CapBnd:\t00000000000004a1",
		"CapAmb:\t0000000000000400",
		"NoNewPrivs:\t1",
		"oom=500",
		"nofile=1234 hardnofile=2048",
		"home=/home/tester",
		"cwd=/tmp",
		"umask=0027",
	)
}

// TestPrepareRootBounding checks that a root process without ambient
// capabilities ends up with the bounding set as its capabilities, and that
// a uid without a passwd entry gets HOME=/.
func TestPrepareRootBounding(t *testing.T) {
	testutil.RequiresRoot(t)
	etc := writeEtc(t, "root:x:0:0:root:/root:/bin/sh\n", "root:x:0:\n")
	p := specs.Process{
		User: specs.User{UID: 0, GID: 0},
		Args: []string{"/bin/sh", "-c", statusScript},
		Cwd:  "/",
		Capabilities: &specs.LinuxCapabilities{
			Bounding:  []string{"CAP_CHOWN", "CAP_KILL"},
			Effective: []string{"CAP_CHOWN"},
			Permitted: []string{"CAP_CHOWN"},
		},
	}
	out, status := runChild(t, p, envEtc+"="+etc)
	if status != 0 {
		t.Fatalf("child exited %d:\n%s", status, out)
	}
	wantLines(t, out,
		"Uid:\t0\t0\t0\t0",
		"Groups:\t",
		"CapPrm:\t0000000000000021",
		"CapEff:\t0000000000000021",
		"CapBnd:\t0000000000000021",
		"CapAmb:\t0000000000000000",
		"NoNewPrivs:\t0",
		"home=/root",
	)

	p.User = specs.User{UID: 4242, GID: 4242}
	out, status = runChild(t, p, envEtc+"="+etc)
	if status != 0 {
		t.Fatalf("child exited %d:\n%s", status, out)
	}
	wantLines(t, out, "Uid:\t4242\t4242\t4242\t4242", "CapEff:\t0000000000000000", "home=/")
}

// TestPrepareErrors checks how Prepare classifies a missing program and a
// bad cwd.
func TestPrepareErrors(t *testing.T) {
	testutil.RequiresRoot(t)
	tests := []struct {
		name string
		edit func(p *specs.Process)
		want string
	}{
		{"not in PATH", func(p *specs.Process) { p.Args = []string{"box-no-such-program"} },
			`prepare: notfound=true invalid=false: exec: "box-no-such-program": executable file not found in $PATH`},
		{"PATH of the process, not of the runtime", func(p *specs.Process) {
			p.Args = []string{"sh"}
			p.Env = []string{"PATH=/nonexistent"}
		}, `prepare: notfound=true invalid=false: exec: "sh": executable file not found in $PATH`},
		{"missing path", func(p *specs.Process) { p.Args = []string{"/bin/box-no-such-program"} },
			`prepare: notfound=true invalid=false: exec: "/bin/box-no-such-program"`},
		{"missing cwd", func(p *specs.Process) { p.Cwd = "/box-no-such-dir" },
			`prepare: notfound=false invalid=true: process.cwd: chdir /box-no-such-dir`},
		{"cwd not a directory", func(p *specs.Process) { p.Cwd = "/bin/sh" },
			`prepare: notfound=false invalid=true: process.cwd: chdir /bin/sh`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := specs.Process{Args: []string{"true"}, Env: []string{"PATH=/usr/bin:/bin"}, Cwd: "/"}
			tt.edit(&p)
			out, status := runChild(t, p)
			if status != childPrepareFailed || !strings.HasPrefix(out, tt.want) {
				t.Errorf("got status %d, output:\n%s\nwant status %d, output starting %q", status, out, childPrepareFailed, tt.want)
			}
		})
	}
}

// TestRunClosesLeakedFDs checks that a descriptor opened without O_CLOEXEC
// does not reach the exec'd process (the CVE-2024-21626 class), and, as a
// negative control, that it does when the close-on-exec step is bypassed.
func TestRunClosesLeakedFDs(t *testing.T) {
	testutil.RequiresRoot(t)
	const leak = "77"
	p := specs.Process{Args: []string{"/bin/ls", "/proc/self/fd"}, Cwd: "/"}

	out, status := runChild(t, p, envLeakFD+"="+leak)
	if status != 0 {
		t.Fatalf("child exited %d:\n%s", status, out)
	}
	fds := strings.Fields(out)
	// 0, 1 and 2, and the directory ls reads.
	if slices.Contains(fds, leak) || len(fds) > 4 || !slices.Contains(fds, "2") {
		t.Errorf("exec'd process has descriptors %v, want 0 1 2 and ls's own", fds)
	}

	out, status = runChild(t, p, envLeakFD+"="+leak, envNoCloexec+"=1")
	if status != 0 {
		t.Fatalf("control child exited %d:\n%s", status, out)
	}
	if !slices.Contains(strings.Fields(out), leak) {
		t.Errorf("control: descriptor %s did not leak without the close-on-exec step (%v); the test cannot fail", leak, out)
	}
}

// wantLines fails t for each line of want that is not a line of out.
// Trailing spaces are ignored (the kernel ends the Groups line with one).
func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	for _, w := range want {
		if !slices.Contains(lines, strings.TrimRight(w, " ")) {
			t.Errorf("missing line %q in:\n%s", w, out)
		}
	}
}
