package launch

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestDeleteActionRunsPoststop checks that the delete action (a daemon that
// died without deleting its container) runs the bundle's poststop hooks with
// status "stopped", and runs none for a bundle whose container was never
// created (no box-state.json): the negative control.
func TestDeleteActionRunsPoststop(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, created := range []bool{true, false} {
		bundle := filepath.Join(t.TempDir(), "ctr-id")
		out := filepath.Join(t.TempDir(), "state")
		if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
			t.Fatal(err)
		}
		spec := specs.Spec{Version: specs.Version, Hooks: &specs.Hooks{Poststop: []specs.Hook{
			{Path: "/bin/busybox", Args: []string{"sh", "-c", `cat > "$1"`, "sh", out}},
		}}}
		b, _ := json.Marshal(spec)
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if created {
			// An init that has exited: a pid nothing runs as any more.
			cmd := exec.Command("/bin/true")
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			if err := WriteBundleState(bundle, BundleState{Pid: cmd.Process.Pid}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cleanupBundle(bundle); err != nil {
			t.Fatalf("created=%t: cleanup: %v", created, err)
		}
		got, err := os.ReadFile(out)
		if !created {
			if err == nil {
				t.Errorf("poststop ran for a container that was never created: %s", got)
			}
			continue
		}
		var st specs.State
		if err != nil || json.Unmarshal(got, &st) != nil {
			t.Fatalf("poststop did not run or got bad state %q: %v", got, err)
		}
		if st.Status != specs.StateStopped || st.ID != "ctr-id" || st.Bundle != bundle || !strings.HasPrefix(st.Version, "1.") {
			t.Errorf("poststop state %+v", st)
		}
	}
}
