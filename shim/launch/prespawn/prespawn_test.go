//go:build linux && cgo

package prespawn

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestJoinsGroup checks the constructor's reading of config.json against
// the group start computes (launch.groupID: runc's group annotation first,
// then CRI's sandbox id, else the container itself): no daemon is
// prespawned exactly when the group is another container's. Anything it
// cannot read means "prespawn", which is always safe.
func TestJoinsGroup(t *testing.T) {
	for _, tc := range []struct {
		name, config, id string
		want             bool
	}{
		{"no annotations", `{"ociVersion":"1.2.0","process":{"args":["true"]}}`, "c1", false},
		{"empty", ``, "c1", false},
		{"pod container", `{"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"sb1"}}`, "c1", true},
		{"pod sandbox", `{"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"sb1"}}`, "sb1", false},
		{"sandbox id prefix of id", `{"annotations":{"io.kubernetes.cri.sandbox-id":"sb"}}`, "sb1", true},
		{"id prefix of sandbox id", `{"annotations":{"io.kubernetes.cri.sandbox-id":"sb12"}}`, "sb1", true},
		{"runc group", `{"annotations":{"io.containerd.runc.v2.group":"g"}}`, "c1", true},
		{"runc group first", `{"annotations":{"io.kubernetes.cri.sandbox-id":"c1","io.containerd.runc.v2.group":"g"}}`, "c1", true},
		{"runc group is the id", `{"annotations":{"io.containerd.runc.v2.group":"c1","io.kubernetes.cri.sandbox-id":"sb1"}}`, "c1", false},
		{"empty runc group falls to CRI", `{"annotations":{"io.containerd.runc.v2.group":"","io.kubernetes.cri.sandbox-id":"sb1"}}`, "c1", true},
		{"whitespace", "{\"annotations\": {\n  \"io.kubernetes.cri.sandbox-id\" :\t\"sb1\"\n}}", "c1", true},
		{"key as an escaped value", `{"process":{"env":["X=\"io.kubernetes.cri.sandbox-id\":\"sb1\""]}}`, "c1", false},
		{"not a string", `{"annotations":{"io.kubernetes.cri.sandbox-id":5}}`, "c1", false},
		{"escaped value", `{"annotations":{"io.kubernetes.cri.sandbox-id":"s\"b"}}`, "c1", false},
		{"truncated", `{"annotations":{"io.kubernetes.cri.sandbox-id":"sb1`, "c1", false},
		{"truncated after key", `{"annotations":{"io.kubernetes.cri.sandbox-id"`, "c1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := joinsGroup([]byte(tc.config), tc.id); got != tc.want {
				t.Errorf("joinsGroup(%s, %q) = %v, want %v", tc.config, tc.id, got, tc.want)
			}
		})
	}
}

// TestSparePath checks the spare's socket path (box_spare_path_for): beside
// containerd's socket, the same for the same containerd, namespace and
// daemon binary, another as soon as one of them differs (a spare of an old
// binary, of another containerd or of another namespace is never taken);
// none for an address that is not an absolute path or too long for a unix
// socket.
func TestSparePath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "containerd-shim-box-v1-daemon")
	if err := os.WriteFile(bin, []byte("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	name := func(address, ns string) string {
		t.Helper()
		n, err := sparePathFor(address, ns, bin)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := name("/run/containerd/containerd.sock", "k8s.io")
	if !regexp.MustCompile(`^/run/containerd/box-spare-[0-9a-f]{16}\.sock$`).MatchString(a) {
		t.Fatalf("path %q", a)
	}
	for _, bad := range []string{"containerd.sock", "", "/" + strings.Repeat("d", 100) + "/c.sock"} {
		if p, err := sparePathFor(bad, "k8s.io", bin); err == nil {
			t.Errorf("address %q: path %q, want none", bad, p)
		}
	}
	if b := name("/run/containerd/containerd.sock", "k8s.io"); b != a {
		t.Errorf("same inputs: %q, then %q", a, b)
	}
	for _, tc := range [][2]string{
		{"/run/containerd/containerd.sock", "default"},
		{"/run/other/containerd.sock", "k8s.io"},
		// The parts are separated: moving a byte across them changes the name.
		{"/run/containerd/containerd.sock" + "k", "8s.io"},
		{"/run/containerd/other.sock", "k8s.io"},
	} {
		if b := name(tc[0], tc[1]); b == a {
			t.Errorf("%q %q: the same name %q", tc[0], tc[1], b)
		}
	}
	// A replaced binary (another inode, size and time) is another spare.
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("v2 longer"), 0o755); err != nil {
		t.Fatal(err)
	}
	if b := name("/run/containerd/containerd.sock", "k8s.io"); b == a {
		t.Errorf("new daemon binary: the same name %q", b)
	}
}
