package runtime

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// runStage runs this test binary as the exec stage with env, with fd 3 a
// sync socket, and returns its exit code, stderr and what it sent on fd 3.
func runStage(t *testing.T, env ...string) (int, string, string) {
	t.Helper()
	parent, child, err := newSyncPair()
	if err != nil {
		t.Fatal(err)
	}
	defer parent.close()
	cmd := exec.Command(os.Args[0], "exec")
	cmd.Env = env
	cmd.ExtraFiles = []*os.File{child}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	child.Close()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var sent string
	if m, err := parent.recv(); err == nil {
		sent = remoteError(m).Error()
	}
	return code, stderr.String(), sent
}

// TestNsenterRefusesMalformed checks the constructor's strict parsing: a
// malformed _BOX_NSENTER stops the stage before the Go runtime starts.
func TestNsenterRefusesMalformed(t *testing.T) {
	for _, v := range []string{"", "x", "3", "3,4", "3,4,", "3,4,10", "3,4,0x", "3,4,0xg", "3,4,0x1",
		"3,4,0x20000,extra", "-3,4,0x0", "3,3,0x0", "2,4,0x0", "3,4,0x0,keep-dumpable,x", "3,99999999999999999999,0x0"} {
		code, stderr, _ := runStage(t, nsenterEnv+"="+v)
		if code != 120 || !strings.Contains(stderr, "malformed _BOX_NSENTER") {
			t.Errorf("%s=%q: exit %d, stderr %q; want 120 and a malformed error", nsenterEnv, v, code, stderr)
		}
	}
}

// TestNsenterReportsSetnsFailure checks a failed setns reaches the daemon
// as an error datagram on the sync socket.
func TestNsenterReportsSetnsFailure(t *testing.T) {
	// fd 4 is not open in the stage: setns fails with EBADF.
	code, _, sent := runStage(t, nsenterEnv+"=3,4,0x4000000")
	if code != 120 || !strings.Contains(strings.ToLower(sent), "nsenter: setns(init pidfd): "+unix.EBADF.Error()) {
		t.Errorf("exit %d, sent %q", code, sent)
	}
}

// TestExecStageNeedsConstructor checks the Go side of the exec stage
// refuses to run when the constructor did not join any namespace.
func TestExecStageNeedsConstructor(t *testing.T) {
	code, _, sent := runStage(t)
	if code != 1 || !strings.Contains(sent, "namespaces not joined") {
		t.Errorf("exit %d, sent %q", code, sent)
	}
}

// runInitStage runs this test binary as "init" with env and returns its
// exit code and stderr.
func runInitStage(t *testing.T, env ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "init")
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

// TestNsholdRefusesMalformed checks the holder's strict parsing: a
// malformed _BOX_NSHOLD or _BOX_USERNS_HOLD stops the process before the Go
// runtime starts, whatever the rest says (bad descriptors, flags that are
// not one namespace, a join of a namespace also created, too many joins).
func TestNsholdRefusesMalformed(t *testing.T) {
	for _, v := range []string{"", "x", "3", "3,", "3,0x", "2,0x0", "3,0x1", "3,0x0,4", "3,0x0,4:", "3,0x0,4:0x3",
		"3,0x0,3:0x40000000", "3,0x40000000,4:0x40000000", "3,0x0,4:0x40000000,", "3,0x0,4:0x40000000x",
		"3,0x0,4:0x8000000,5:0x8000000,6:0x8000000,7:0x8000000,8:0x8000000,9:0x8000000,10:0x8000000,11:0x8000000,12:0x8000000"} {
		code, stderr := runInitStage(t, nsHoldEnv+"="+v)
		if code != 120 || !strings.Contains(stderr, "malformed "+nsHoldEnv) {
			t.Errorf("%s=%q: exit %d, stderr %q; want 120 and a malformed error", nsHoldEnv, v, code, stderr)
		}
	}
	for _, v := range []string{"", "x", "2", "3,", "-3"} {
		code, stderr := runInitStage(t, usernsHoldEnv+"="+v)
		if code != 120 || !strings.Contains(stderr, "malformed "+usernsHoldEnv) {
			t.Errorf("%s=%q: exit %d, stderr %q; want 120 and a malformed error", usernsHoldEnv, v, code, stderr)
		}
	}
}

// TestCgroupTasksRefusesMalformed checks the init constructor's parsing of
// _BOX_CGROUP_TASKS: anything but a list of descriptors above the sync
// socket stops the stage before the Go runtime starts.
func TestCgroupTasksRefusesMalformed(t *testing.T) {
	for _, v := range []string{"", "x", "2", "3", "4,", ",4", "4,,5", "4,x", "-4", "4;5", "99999999999999999999"} {
		code, stderr := runInitStage(t, cgroupTasksEnv+"="+v)
		if code != 120 || !strings.Contains(stderr, "malformed "+cgroupTasksEnv) {
			t.Errorf("%s=%q: exit %d, stderr %q; want 120 and a malformed error", cgroupTasksEnv, v, code, stderr)
		}
	}
}

// TestCgroupTasksReportsWriteFailure checks that a failed join of the
// cgroup reaches the daemon as an error datagram and stops the stage.
func TestCgroupTasksReportsWriteFailure(t *testing.T) {
	parent, child, err := newSyncPair()
	if err != nil {
		t.Fatal(err)
	}
	defer parent.close()
	cmd := exec.Command(os.Args[0], "init")
	// fd 4 is not open in the stage: the write fails with EBADF.
	cmd.Env = []string{cgroupTasksEnv + "=4"}
	cmd.ExtraFiles = []*os.File{child}
	err = cmd.Run()
	child.Close()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 120 {
		t.Fatalf("stage: %v; want exit 120", err)
	}
	m, err := parent.recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := remoteError(m).Error(); !strings.Contains(strings.ToLower(got), "join the container's cgroup: "+unix.EBADF.Error()) {
		t.Errorf("sent %q", got)
	}
}
