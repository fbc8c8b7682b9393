package oci

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	coci "github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const imagePasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
`

const imageGroup = `root:x:0:
daemon:x:1:
wheel:x:10:alice
users:x:100:alice,bob
alice:x:1000:
`

// userFromString is the whole path of a user string to the credentials box
// runs the process with: containerd's client turns the string ("1",
// "1:0", "name", "name:group") into the spec's numeric user with the
// image's /etc/passwd and /etc/group (coci.WithUser, as ctr --user and the
// CRI plugin do), box validates it (NewProcessPlan) and completes it from
// the same files (ResolveUser).
func userFromString(t *testing.T, root, userstr string) (Identity, error) {
	t.Helper()
	s := &specs.Spec{Root: &specs.Root{Path: root}, Linux: &specs.Linux{}, Process: &specs.Process{Args: []string{"sh"}, Cwd: "/"}}
	if err := coci.WithUser(userstr)(context.Background(), nil, &containers.Container{ID: "u"}, s); err != nil {
		return Identity{}, err
	}
	plan, err := NewProcessPlan(s.Process)
	if err != nil {
		return Identity{}, err
	}
	passwd, err := os.Open(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	defer passwd.Close()
	group, err := os.Open(filepath.Join(root, "etc/group"))
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()
	return ResolveUser(plan.User, passwd, group)
}

// TestUserStrings is the user-string parsing check (issue 4's "1", "1:0",
// names, unknown names, (uid_t)-1): each string ends as the credentials a
// runtime following the image's files must give, and an unknown name or an
// id of -1 is an error, never uid 0 or a silently "unchanged" uid.
func TestUserStrings(t *testing.T) {
	root := t.TempDir()
	for name, data := range map[string]string{"etc/passwd": imagePasswd, "etc/group": imageGroup} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		user    string
		want    Identity
		wantErr string // substring; "" means success
	}{
		{"0", Identity{UID: 0, GID: 0, AdditionalGids: []uint32{0}, Home: "/root"}, ""},
		{"1", Identity{UID: 1, GID: 1, AdditionalGids: []uint32{1}, Home: "/usr/sbin"}, ""},
		{"1:0", Identity{UID: 1, GID: 0, AdditionalGids: []uint32{0}, Home: "/usr/sbin"}, ""},
		{"alice", Identity{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 100, 1000}, Home: "/home/alice"}, ""},
		{"alice:wheel", Identity{UID: 1000, GID: 10, AdditionalGids: []uint32{10, 100}, Home: "/home/alice"}, ""},
		{"alice:0", Identity{UID: 1000, GID: 0, AdditionalGids: []uint32{10, 100, 0}, Home: "/home/alice"}, ""},
		{"1000:users", Identity{UID: 1000, GID: 100, AdditionalGids: []uint32{10, 100}, Home: "/home/alice"}, ""},
		{"bob", Identity{UID: 1001, GID: 100, AdditionalGids: []uint32{100}, Home: "/home/bob"}, ""},
		// A uid without a passwd entry is allowed (Kubernetes runAsUser).
		{"4242", Identity{UID: 4242, GID: 0, AdditionalGids: []uint32{0}, Home: "/"}, ""},
		{"4242:4242", Identity{UID: 4242, GID: 4242, AdditionalGids: []uint32{4242}, Home: "/"}, ""},
		{"mallory", Identity{}, "no users found"},
		{"alice:nogroup", Identity{}, "no groups found"},
		{"mallory:0", Identity{}, "no users found"},
		{"4294967295", Identity{}, "uid out of range"},
		{"0:4294967295", Identity{}, "gid out of range"},
		{"-1", Identity{}, "uid out of range"},
		{"1:2:3", Identity{}, "invalid USER value"},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			got, err := userFromString(t, root, tt.user)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("user %q: got %+v, %v; want an error with %q", tt.user, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("user %q: %v", tt.user, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("user %q: got %+v, want %+v", tt.user, got, tt.want)
			}
		})
	}
}

// TestUserMinusOneRefused checks the numeric path that bypasses the client:
// a spec (exec's process.json included) with uid, gid or a supplementary gid
// of (uid_t)-1 is a FieldError naming the field, since setresuid(2) reads
// -1 as "leave unchanged" and the process would keep root.
func TestUserMinusOneRefused(t *testing.T) {
	const minus1 = math.MaxUint32
	for _, tt := range []struct {
		user  specs.User
		field string
	}{
		{specs.User{UID: minus1}, "process.user.uid"},
		{specs.User{UID: 1000, GID: minus1}, "process.user.gid"},
		{specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5, minus1}}, "process.user.additionalGids[1]"},
	} {
		_, err := NewProcessPlan(&specs.Process{User: tt.user, Args: []string{"sh"}, Cwd: "/"})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("user %+v: err %v, want a FieldError for %s", tt.user, err, tt.field)
		}
	}
	// (uid_t)-1 in the image's passwd never matches a spec uid.
	id, err := ResolveUser(specs.User{UID: 0}, strings.NewReader("evil:x:4294967295:0::/evil:/bin/sh\nroot:x:0:0::/root:/bin/sh\n"), nil)
	if err != nil || id.Home != "/root" {
		t.Errorf("passwd entry with uid -1: %+v, %v", id, err)
	}
}
