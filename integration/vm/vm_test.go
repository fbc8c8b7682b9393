//go:build linux

// Package vm runs box's root tests in a throwaway VM with a pure cgroup v2 hierarchy and
// Debian's cloud kernel (6.1): the second kernel and the cgroup setup most users have, which the
// cgroup v1 hybrid test hosts cannot give.
//
// hack/vm/deps.sh and hack/vm/build.sh (`make vm-test`) put a kernel, an initramfs with static
// test binaries and the list of what they run (tests.list) in BOX_VM_DIR; this test boots it
// with qemu-system-x86_64 (TCG), reads the results from the serial console (the markers are
// described in hack/vm/init) and reports every test of the VM as a subtest
// (TestRootTestsInCgroupV2VM/<package>/<Test>): a test that failed in the VM fails here with
// its output. Without BOX_VM_DIR the test skips (so `go test ./integration/...` does not boot
// a VM with stale or missing artifacts).
//
// Env: BOX_VM_DIR (required), BOX_VM_TIMEOUT (Go duration; default 12m: qemu is killed by pid
// after it and the test fails), BOX_VM_QEMU (default qemu-system-x86_64 from PATH).
package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/testutil"
)

// defaultTimeout bounds the whole VM run: the default subset takes 1.5-4 min, VM_TESTS_ALL
// (with the attack tests) 4-7 min, more when other work shares the host's 2 CPUs with TCG.
const defaultTimeout = 12 * time.Minute

// entry is one line of tests.list: a test binary and the -test.skip it runs with.
type entry struct {
	name string
	skip string
}

// result is one top-level test run in the VM.
type result struct {
	test   string
	rc     int
	status string // PASS, FAIL, SKIP, or NONE (the binary ran no test: excluded by -test.skip)
	output []string
}

// pkgRun is what the console says about one test binary.
type pkgRun struct {
	begun, ended bool
	rc           int
	secs         string
	results      []result
	leftover     string
}

// console is the parsed serial console.
type console struct {
	info []string
	pkgs map[string]*pkgRun
	done bool
	rc   int
	tail []string // the last lines, for a VM that did not finish
}

var (
	statusLine = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) `)
	resultLine = regexp.MustCompile(`^=== VM-RESULT (\S+) (\S+) rc=(-?\d+)`)
	beginLine  = regexp.MustCompile(`^=== VM-BEGIN (\S+)`)
	endLine    = regexp.MustCompile(`^=== VM-END (\S+) rc=(-?\d+) secs=(\S+)`)
	leftLine   = regexp.MustCompile(`^=== VM-LEFTOVER (\S+) cgroups: (.*)`)
	doneLine   = regexp.MustCompile(`^=== VM-DONE rc=(-?\d+)`)
)

func parseConsole(r io.Reader) (*console, error) {
	c := &console{pkgs: map[string]*pkgRun{}}
	var cur *pkgRun
	var buf []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		c.tail = append(c.tail, line)
		if len(c.tail) > 60 {
			c.tail = c.tail[1:]
		}
		switch {
		case strings.HasPrefix(line, "=== VM-INFO "):
			c.info = append(c.info, strings.TrimPrefix(line, "=== VM-INFO "))
		case beginLine.MatchString(line):
			m := beginLine.FindStringSubmatch(line)
			cur = &pkgRun{begun: true}
			c.pkgs[m[1]] = cur
			buf = nil
		case resultLine.MatchString(line):
			m := resultLine.FindStringSubmatch(line)
			rc, _ := strconv.Atoi(m[3])
			res := result{test: m[2], rc: rc, status: "NONE", output: trimBlank(buf)}
			for _, l := range buf {
				if s := statusLine.FindStringSubmatch(l); s != nil && s[2] == m[2] {
					res.status = s[1]
				}
			}
			if rc != 0 {
				res.status = "FAIL"
			}
			if p := c.pkgs[m[1]]; p != nil {
				p.results = append(p.results, res)
			}
			buf = nil
		case endLine.MatchString(line):
			m := endLine.FindStringSubmatch(line)
			if p := c.pkgs[m[1]]; p != nil {
				p.ended = true
				p.rc, _ = strconv.Atoi(m[2])
				p.secs = m[3]
			}
			cur = nil
		case leftLine.MatchString(line):
			m := leftLine.FindStringSubmatch(line)
			if p := c.pkgs[m[1]]; p != nil {
				p.leftover = strings.TrimSpace(m[2])
			}
		case doneLine.MatchString(line):
			m := doneLine.FindStringSubmatch(line)
			c.done = true
			c.rc, _ = strconv.Atoi(m[1])
		default:
			if cur != nil {
				buf = append(buf, line)
			}
		}
	}
	if cur != nil && len(buf) > 0 {
		// a binary that never reported: keep its output for the report
		cur.results = append(cur.results, result{test: "(unfinished)", rc: -1, status: "FAIL", output: trimBlank(buf)})
	}
	return c, sc.Err()
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// quote indents VM output so that its "--- FAIL" lines are not read as the host's own.
func quote(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\t| ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// logResults passes on the measurement lines a VM test logged ("ATTACK-RESULT ...", from
// integration/attacks_test.go), which go test -v prints only for the test binary in the VM.
func logResults(t *testing.T, lines []string) {
	for _, l := range lines {
		if i := strings.Index(l, "ATTACK-RESULT "); i >= 0 {
			t.Log(l[i:])
		}
	}
}

func readList(path string) ([]entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []entry
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		e := entry{name: f[0]}
		if len(f) > 2 {
			e.skip = f[2]
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no test binaries", path)
	}
	return out, nil
}

// TestRootTestsInCgroupV2VM boots the VM, runs the root tests of the packages in tests.list
// inside it and reports each of their tests.
func TestRootTestsInCgroupV2VM(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := os.Getenv("BOX_VM_DIR")
	if dir == "" {
		t.Skip("BOX_VM_DIR is not set; run `make vm-test` (hack/vm/README.md)")
	}
	kernel := filepath.Join(dir, "kernel", "vmlinuz")
	initrd := filepath.Join(dir, "initramfs.gz")
	list, err := readList(filepath.Join(dir, "tests.list"))
	if err != nil {
		t.Fatalf("%v; run hack/vm/build.sh", err)
	}
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v; run hack/vm/deps.sh and hack/vm/build.sh", err)
		}
	}
	c := bootVM(t, dir, kernel, initrd, "console=ttyS0 quiet panic=-1")
	if len(c.info) == 0 || !strings.Contains(c.info[0], "cgroupfs=cgroup2") {
		t.Fatalf("the VM did not report a cgroup2 /sys/fs/cgroup: %q", c.info)
	}
	reportVM(t, c, list)
}

// bootVM boots kernel + initrd with qemu (TCG, 2 CPUs, 2 GiB, no network), writes the console
// to dir/console.log, streams the VM-* markers to the test log and returns the parsed console.
// It fails t if qemu fails, times out (BOX_VM_TIMEOUT; it is then killed by its pid) or the VM
// stops before VM-DONE.
func bootVM(t *testing.T, dir, kernel, initrd, cmdline string) *console {
	t.Helper()
	qemu := os.Getenv("BOX_VM_QEMU")
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	qemu, err := exec.LookPath(qemu)
	if err != nil {
		t.Fatalf("%v: apt-get install qemu-system-x86 (hack/vm/deps.sh)", err)
	}
	timeout := defaultTimeout
	if v := os.Getenv("BOX_VM_TIMEOUT"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil {
			t.Fatalf("BOX_VM_TIMEOUT: %v", err)
		}
	}
	logPath := filepath.Join(dir, "console.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// TCG: /dev/kvm exists on the test hosts but does not run these guests. No NIC: the VM has
	// no network at all. -no-reboot with panic=-1: a kernel panic ends qemu at once; qemu is
	// killed (by its pid) when the timeout expires.
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "2",
		"-nographic", "-nic", "none", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline)
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(logFile, pw)
	cmd.Stderr = cmd.Stdout
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line := strings.TrimRight(sc.Text(), "\r"); strings.HasPrefix(line, "=== VM-") {
				t.Log(strings.TrimPrefix(line, "=== "))
			}
		}
		io.Copy(io.Discard, pr)
	}()
	start := time.Now()
	t.Logf("booting %s (timeout %s), console: %s", qemu, timeout, logPath)
	runErr := cmd.Run()
	pw.Close()
	wg.Wait()
	t.Logf("VM run took %s", time.Since(start).Round(100*time.Millisecond))

	logFile.Seek(0, io.SeekStart)
	c, err := parseConsole(logFile)
	if err != nil {
		t.Fatalf("read %s: %v", logPath, err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("the VM did not finish within %s; qemu (pid %d) was killed. Last console lines:\n%s",
			timeout, cmd.Process.Pid, quote(c.tail))
	} else if runErr != nil {
		t.Errorf("qemu: %v. Last console lines:\n%s", runErr, quote(c.tail))
	} else if !c.done {
		t.Errorf("the VM stopped before it finished. Last console lines:\n%s", quote(c.tail))
	}
	for _, i := range c.info {
		t.Logf("vm: %s", i)
	}
	return c
}

// reportVM reports every test the VM ran as a subtest <package>/<Test> (with the ATTACK-RESULT
// lines of its output in the host's log).
func reportVM(t *testing.T, c *console, list []entry) {
	t.Helper()
	for _, e := range list {
		t.Run(e.name, func(t *testing.T) {
			p := c.pkgs[e.name]
			if p == nil {
				t.Fatalf("no results from %s in the VM", e.name)
			}
			failed := false
			for _, r := range p.results {
				t.Run(r.test, func(t *testing.T) {
					logResults(t, r.output)
					switch r.status {
					case "PASS":
					case "SKIP":
						t.Skipf("skipped in the VM:\n%s", quote(r.output))
					case "NONE":
						if e.skip != "" {
							t.Skipf("not run in the VM: excluded (-test.skip %q; hack/vm/README.md)", e.skip)
						}
						t.Skipf("ran no test in the VM:\n%s", quote(r.output))
					default:
						failed = true
						t.Errorf("failed in the VM (exit status %d):\n%s", r.rc, quote(r.output))
					}
				})
			}
			if len(p.results) == 0 {
				t.Errorf("%s ran no test in the VM", e.name)
			}
			if !p.ended {
				t.Errorf("%s did not finish in the VM", e.name)
			} else {
				t.Logf("%s: %d tests in %ss (exit status %d)", e.name, len(p.results), p.secs, p.rc)
			}
			if p.rc != 0 && !failed {
				t.Errorf("%s exited %d in the VM with no failing test", e.name, p.rc)
			}
			if p.leftover != "" {
				if failed {
					t.Logf("left behind in the VM (after failures): %s", p.leftover)
				} else {
					t.Errorf("left behind in the VM: %s", p.leftover)
				}
			}
		})
	}
	if c.done && c.rc != 0 && !t.Failed() {
		t.Errorf("the VM reported rc=%d, but no test failed", c.rc)
	}
}
