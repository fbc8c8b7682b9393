package oci

import (
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
broken:x:notanumber:0::/broken:/bin/sh
short:x:1001
+nis:x:1000:1000::/nis:/bin/sh
alice:x:1000:1000:Alice:/home/alice:/bin/sh
alice2:x:1000:1000::/home/alice2:/bin/sh
nohome:x:1002:1002:::/bin/sh
`

const testGroup = `root:x:0:root
wheel:x:10:root,alice
bad:x:zz:alice
audio:x:29:bob, alice
video:x:44:bob,alice
alice:x:1000:
users:x:100:alice2,alice
dup:x:44:alice
`

// TestResolveUser checks home and supplementary groups, with and without
// passwd entries and files.
func TestResolveUser(t *testing.T) {
	tests := []struct {
		name          string
		user          specs.User
		passwd, group string // "-" means the file is absent
		want          Identity
	}{
		{
			name: "root", user: specs.User{UID: 0, GID: 0},
			passwd: testPasswd, group: testGroup,
			want: Identity{UID: 0, GID: 0, Home: "/root", AdditionalGids: []uint32{0, 10}},
		},
		{
			name:   "member of groups, primary gid kept, dups dropped",
			user:   specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{44, 5, 1000, 5}},
			passwd: testPasswd, group: testGroup,
			want: Identity{UID: 1000, GID: 1000, Home: "/home/alice", AdditionalGids: []uint32{10, 44, 100, 5, 1000}},
		},
		{
			name: "uid without passwd entry", user: specs.User{UID: 4242, GID: 4242, AdditionalGids: []uint32{7}},
			passwd: testPasswd, group: testGroup,
			want: Identity{UID: 4242, GID: 4242, Home: "/", AdditionalGids: []uint32{7}},
		},
		{
			name: "entry without home", user: specs.User{UID: 1002, GID: 1002},
			passwd: testPasswd, group: testGroup,
			want: Identity{UID: 1002, GID: 1002, Home: "/"},
		},
		{
			name: "malformed uid line does not match uid 0", user: specs.User{UID: 0},
			passwd: "broken:x:zero:0::/broken:/bin/sh\nroot:x:0:0::/root:/bin/sh\n", group: "g:x:3:broken,root\n",
			want: Identity{Home: "/root", AdditionalGids: []uint32{3}},
		},
		{
			name: "no files", user: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{3}},
			passwd: "-", group: "-",
			want: Identity{UID: 1000, GID: 1000, Home: "/", AdditionalGids: []uint32{3}},
		},
		{
			name: "passwd without group", user: specs.User{UID: 1000, GID: 1000},
			passwd: testPasswd, group: "-",
			want: Identity{UID: 1000, GID: 1000, Home: "/home/alice"},
		},
		{
			name: "garbage files", user: specs.User{UID: 1000, GID: 1000},
			passwd: "\x00\x01::::\n:::::::\n\n", group: "::::\n",
			want: Identity{UID: 1000, GID: 1000, Home: "/"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveUser(tt.user, reader(tt.passwd), reader(tt.group))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestResolveUserReadError checks that a failing read is reported, not
// mistaken for an absent entry.
func TestResolveUserReadError(t *testing.T) {
	_, err := ResolveUser(specs.User{UID: 0}, iotest.ErrReader(io.ErrUnexpectedEOF), nil)
	if err == nil || !strings.Contains(err.Error(), "passwd") {
		t.Errorf("got %v, want a passwd read error", err)
	}
}

func reader(s string) io.Reader {
	if s == "-" {
		return nil
	}
	return strings.NewReader(s)
}
