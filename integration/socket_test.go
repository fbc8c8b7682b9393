package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// TestShimSocketIsPathBased is the containerd CVE-2020-15257 check: the
// daemon's socket is a filesystem socket (never abstract, which any process
// sharing the host network namespace could reach), 0600 in a 0700
// directory. Negative control: the socket is found in /proc/net/unix as a
// path, so the table the abstract check reads does list the daemon.
func TestShimSocketIsPathBased(t *testing.T) {
	c := startBox(t)
	id := harness.RandID(t, "sock")
	ctr := newContainer(t, c, id, []string{"sleep", "1000"})
	startTask(t, c, ctr)

	b, err := os.ReadFile(filepath.Join(c.State, "io.containerd.runtime.v2.task", harness.Namespace, id, "address"))
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(string(b))
	path, ok := strings.CutPrefix(addr, "unix://")
	if !ok || !filepath.IsAbs(path) {
		t.Fatalf("shim address %q is not a path-based unix socket", addr)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %s mode %v, want a 0600 socket", path, fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("socket dir %s mode %v, want 0700", filepath.Dir(path), di.Mode().Perm())
	}
	unixTable, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(path)
	if strings.Contains(string(unixTable), "@"+name) {
		t.Errorf("an abstract socket named %s exists", name)
	}
	if !strings.Contains(string(unixTable), path) {
		t.Errorf("negative control: %s not listed in /proc/net/unix", path)
	}
}
