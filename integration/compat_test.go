package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// TestContainerd20Lifecycle verifies the basic lifecycle against containerd 2.0.x, which starts
// shims with the pre-2.3 protocol (flags and env, JSON reply): ctr run output and exit code,
// then the Go client's create/start/wait/delete, leaving nothing behind.
func TestContainerd20Lifecycle(t *testing.T) {
	c := startBox(t, harness.WithVersion("2.0"))
	ref := c.Busybox(t)

	id := harness.RandID(t, "ctr20")
	out, errOut, code := c.Ctr(t, "run", "--rm", "--runtime", harness.RuntimeBox, "--cgroup", c.CgroupPath(id),
		ref, id, "sh", "-c", "echo $$; exit 3")
	if code != 3 || strings.TrimSpace(out) != "1" {
		t.Errorf("ctr run: code %d stdout %q stderr %q; want 3 and pid 1", code, out, errOut)
	}
	c.RequireNoLeftovers(t, id, 10*time.Second)

	id = harness.RandID(t, "client20")
	ctr := newContainer(t, c, id, []string{"sh", "-c", "echo hello; echo err >&2; exit 5"})
	r := runToExit(t, c, ctr)
	if r.code != 5 || r.stdout != "hello\n" || r.stderr != "err\n" {
		t.Errorf("got code %d stdout %q stderr %q; want 5 hello err", r.code, r.stdout, r.stderr)
	}
	if err := ctr.Delete(c.Context(t), client.WithSnapshotCleanup); err != nil {
		t.Fatal(err)
	}
	c.RequireNoLeftovers(t, id, 10*time.Second)
}

// TestSameResultAsRunc runs the same container under the peer (containerd-shim-runc-v2 + runc)
// and under box on one containerd and compares what the process observes. The runc half also
// proves the harness's runtime plumbing independently of box.
func TestSameResultAsRunc(t *testing.T) {
	c := startBox(t, harness.WithRuncPeer())
	script := `echo $$; id; hostname; ls /sys/class/net; cat /proc/self/status | grep -E '^(Cap(Eff|Bnd)|NoNewPrivs|Seccomp):'; ` +
		`ls / | wc -l; exit 4`
	results := map[string]result{}
	for _, runtime := range []string{harness.RuntimeRunc, harness.RuntimeBox} {
		id := harness.RandID(t, "cmp")
		ctx := c.Context(t)
		img, err := c.Client.GetImage(ctx, c.Busybox(t))
		if err != nil {
			t.Fatal(err)
		}
		ctr, err := c.Client.NewContainer(ctx, id,
			client.WithImage(img), client.WithNewSnapshot(id+"-snap", img), client.WithRuntime(runtime, nil),
			client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sh", "-c", script),
				oci.WithHostname("cmp"), c.WithCgroup(id)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteContainer(t, ctx, ctr) })
		var out, errOut syncBuffer
		task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, &errOut), cio.WithFIFODir(c.FIFODir)))
		if err != nil {
			t.Fatalf("%s: NewTask: %v", runtime, err)
		}
		wait, err := task.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Start(ctx); err != nil {
			t.Fatalf("%s: Start: %v", runtime, err)
		}
		code := waitCode(t, wait)
		if _, err := task.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		results[runtime] = result{stdout: out.String(), stderr: errOut.String(), code: code}
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
			t.Fatal(err)
		}
		c.RequireNoLeftovers(t, id, 10*time.Second)
	}
	runc, box := results[harness.RuntimeRunc], results[harness.RuntimeBox]
	if runc.code != 4 {
		t.Fatalf("peer runc: code %d stdout %q stderr %q", runc.code, runc.stdout, runc.stderr)
	}
	t.Logf("runc: %+v\nbox:  %+v", runc, box)
	if box != runc {
		t.Errorf("box and runc differ:\nrunc: %+v\nbox:  %+v", runc, box)
	}
}
