package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// TestCtrRun verifies the command line: `ctr run --rm --runtime io.containerd.box.v1`
// prints pid 1, the hostname and the image root, and ctr exits with the container's code.
func TestCtrRun(t *testing.T) {
	c := startBox(t)
	ref := c.Busybox(t)
	id := harness.RandID(t, "ctr-run")
	out, errOut, code := c.Ctr(t, "run", "--rm", "--runtime", harness.RuntimeBox, "--cgroup", c.CgroupPath(id),
		ref, id, "sh", "-c", "echo $$; hostname; ls /; exit 3")
	if code != 3 {
		t.Fatalf("ctr exit code %d, want 3; stdout %q stderr %q", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 || lines[0] != "1" {
		t.Fatalf("output %q: want pid 1, hostname, root listing", out)
	}
	// The spec has no hostname, so the new UTS namespace keeps the copy of the host's name.
	if host, _ := os.Hostname(); lines[1] != host {
		t.Errorf("hostname %q, want the inherited %q", lines[1], host)
	}
	listing := strings.Fields(strings.Join(lines[2:], " "))
	for _, want := range []string{"bin", "etc", "tmp", "proc", "dev", "sys"} {
		if !contains(listing, want) {
			t.Errorf("ls / = %v, missing %s", listing, want)
		}
	}
	c.RequireNoLeftovers(t, id, 10*time.Second)
}

// TestClientOutputAndExitCodes verifies stdout, stderr and exit codes through the Go client,
// including death by signal (128+n).
func TestClientOutputAndExitCodes(t *testing.T) {
	c := startBox(t)
	for _, tc := range []struct {
		name         string
		script       string
		code         uint32
		stdout, errs string
	}{
		{"zero", "echo out; echo err >&2", 0, "out\n", "err\n"},
		{"three", "echo three; exit 3", 3, "three\n", ""},
		{"max", "exit 255", 255, "", ""},
		// pid 1 ignores signals from inside its namespace, so a child dies by SIGKILL here;
		// the init's own death by signal (137, 143) is TestKillThenDeleteLeavesNothing's.
		{"child-sigkill", `sh -c 'kill -9 $$'; exit $?`, 137, "", "Killed\n"},
		{"env", `echo "$PATH"`, 0, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := harness.RandID(t, "codes")
			ctr := newContainer(t, c, id, []string{"sh", "-c", tc.script})
			r := runToExit(t, c, ctr)
			if r.code != tc.code || r.stdout != tc.stdout || r.stderr != tc.errs {
				t.Errorf("got code %d stdout %q stderr %q; want %d %q %q", r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.errs)
			}
		})
	}
}

// TestUserFromImage verifies that oci.WithUser resolves names through the image's passwd and
// group files (box is uid 1000, member of boxgrp 1001).
func TestUserFromImage(t *testing.T) {
	c := startBox(t)
	id := harness.RandID(t, "user")
	ctr := newContainer(t, c, id, []string{"id"}, oci.WithUser("box"), oci.WithAdditionalGIDs("box"))
	r := runToExit(t, c, ctr)
	if r.code != 0 || !strings.Contains(r.stdout, "uid=1000(box) gid=1000(box)") || !strings.Contains(r.stdout, "1001(boxgrp)") {
		t.Fatalf("id: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestWaitAfterExit verifies that Wait called after the task has exited (and after the exit
// event was published) still returns the exit status: Wait, not the event, is the source of
// truth until Delete.
func TestWaitAfterExit(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "wait")
	ctr := newContainer(t, c, id, []string{"sh", "-c", "exit 7"})
	events, errs := c.Client.Subscribe(ctx, `topic=="/tasks/exit"`)
	task, _, err := newTask(t, c, ctr)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, errs, id, "/tasks/exit")
	for i := 0; i < 2; i++ {
		wait, err := task.Wait(ctx)
		if err != nil {
			t.Fatalf("Wait after exit: %v", err)
		}
		if code := waitCode(t, wait); code != 7 {
			t.Fatalf("Wait after exit: code %d, want 7", code)
		}
	}
	st, err := task.Delete(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitCode() != 7 {
		t.Errorf("Delete: exit code %d, want 7", st.ExitCode())
	}
}

// TestEventOrder verifies that a container's task events arrive in the order clients rely on:
// TaskCreate, TaskStart, TaskExit, TaskDelete.
func TestEventOrder(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "events")
	ctr := newContainer(t, c, id, []string{"true"})
	events, errs := c.Client.Subscribe(ctx, `topic~="^/tasks/"`)
	r := runToExit(t, c, ctr)
	if r.code != 0 {
		t.Fatalf("true exited %d", r.code)
	}
	want := []string{"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"}
	var got []string
	for len(got) < len(want) {
		got = append(got, waitEvent(t, events, errs, id, ""))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// waitEvent returns the topic of the next lifecycle event (create/start/exit/delete) of
// container id, or of the given topic when topic != "".
func waitEvent(t *testing.T, events <-chan *events.Envelope, errs <-chan error, id, topic string) string {
	t.Helper()
	timeout := time.After(exitTimeout)
	for {
		select {
		case env := <-events:
			if env == nil || (topic != "" && env.Topic != topic) {
				continue
			}
			ev, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				t.Fatalf("decode %s: %v", env.Topic, err)
			}
			var cid string
			switch e := ev.(type) {
			case *eventtypes.TaskCreate:
				cid = e.ContainerID
			case *eventtypes.TaskStart:
				cid = e.ContainerID
			case *eventtypes.TaskExit:
				cid = e.ContainerID
			case *eventtypes.TaskDelete:
				cid = e.ContainerID
			default:
				continue
			}
			if cid == id {
				return env.Topic
			}
		case err := <-errs:
			t.Fatalf("event subscription: %v", err)
		case <-timeout:
			t.Fatalf("no %q event for %s within %v", topic, id, exitTimeout)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
