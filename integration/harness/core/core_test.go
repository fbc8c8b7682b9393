package core

import (
	"strings"
	"testing"
)

// TestConfigStaysPrivate verifies that the rendered config points every path into Dir and
// picks the socket-dir mechanism by version.
func TestConfigStaysPrivate(t *testing.T) {
	for _, tc := range []struct {
		version, want, notWant string
	}{
		{"2.4", `socket_dir = "/run/box-x/s"`, "BOX_SOCKET_DIR"},
		{"2.0", `env = ["BOX_SOCKET_DIR=/run/box-x/s"]`, "socket_dir"},
	} {
		d := New("/run/box-x")
		d.Version = tc.version
		d.LogLevel = "warn"
		cfg := d.Config()
		for _, want := range []string{tc.want, `root = "/run/box-x/root"`, `state = "/run/box-x/state"`,
			`address = "/run/box-x/c.sock"`, `address = "/run/box-x/c.sock.ttrpc"`, `level = "warn"`} {
			if !strings.Contains(cfg, want) {
				t.Errorf("%s: config lacks %s:\n%s", tc.version, want, cfg)
			}
		}
		if strings.Contains(cfg, tc.notWant) || strings.Contains(cfg, "/run/containerd") {
			t.Errorf("%s: config has %q or /run/containerd:\n%s", tc.version, tc.notWant, cfg)
		}
	}
}

// TestRemoveCgroupRefusesForeign verifies that RemoveCgroup touches nothing outside the owned
// prefix (negative control: the owned prefix itself is accepted, and absent dirs are no error).
func TestRemoveCgroupRefusesForeign(t *testing.T) {
	for _, path := range []string{"/process_api", "/", "/box-bench-1", "/system.slice"} {
		if err := RemoveCgroup(path, "/box-test-"); err == nil {
			t.Errorf("RemoveCgroup(%q) accepted a cgroup outside /box-test-", path)
		}
	}
	if err := RemoveCgroup("/box-test-absent-00000000", "/box-test-"); err != nil {
		t.Errorf("RemoveCgroup of an absent owned cgroup: %v", err)
	}
	if err := RemoveCgroup("/box-test-x", ""); err == nil {
		t.Error("RemoveCgroup with an empty prefix accepted")
	}
}
