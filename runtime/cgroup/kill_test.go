package cgroup

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
)

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func waitSignaled(t *testing.T, cmd *exec.Cmd, sig syscall.Signal) {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("wait: %v; want an exit error", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != sig {
		t.Fatalf("process ended with %v; want signal %v", ws, sig)
	}
}

// TestSignalAllSignalsListedProcesses checks listed processes get the signal and a listed pid
// that no longer exists is skipped.
func TestSignalAllSignalsListedProcesses(t *testing.T) {
	cmd := startSleep(t)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	list := func() ([]int, error) { return []int{cmd.Process.Pid, gone.Process.Pid}, nil }
	if err := signalAll(list, syscall.SIGTERM); err != nil {
		t.Fatalf("signalAll: %v", err)
	}
	waitSignaled(t, cmd, syscall.SIGTERM)
}

// TestSignalAllSkipsProcessesThatLeft checks a pid missing from the second listing (it left
// the cgroup, or its number was recycled) is not signalled. Negative control: the same list
// without the change kills the process (TestSignalAllSignalsListedProcesses).
func TestSignalAllSkipsProcessesThatLeft(t *testing.T) {
	cmd := startSleep(t)
	calls := 0
	list := func() ([]int, error) {
		calls++
		if calls == 1 {
			return []int{cmd.Process.Pid}, nil
		}
		return nil, nil
	}
	if err := signalAll(list, syscall.SIGKILL); err != nil {
		t.Fatalf("signalAll: %v", err)
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("process was signalled: %v", err)
	}
}
