package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"path"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Fuzz targets of the planner's input parsers. Each has a seed corpus under
// testdata/fuzz/<name>/ besides its f.Add seeds; `make fuzz` runs each for a
// bounded time (hack/fuzz.sh).

// asFieldError fails t unless err is a FieldError whose field starts with
// prefix.
func asFieldError(t *testing.T, err error, prefix string) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, prefix) {
		t.Fatalf("error %v is not a FieldError under %s", err, prefix)
	}
}

// FuzzResolveUser checks ResolveUser on any passwd and group file: no
// panic, the spec's uid and gid are kept as they are, the supplementary gids
// have no duplicates and include the spec's own, an entry is only ever
// matched by its exact numeric uid (never by a malformed or -1 id), and Home
// is never empty.
func FuzzResolveUser(f *testing.F) {
	f.Add([]byte(imagePasswd), []byte(imageGroup), uint32(1000), uint32(1000), uint32(5))
	f.Add([]byte("root:x:0:0:root:/root:/bin/sh\n"), []byte("root:x:0:\n"), uint32(0), uint32(0), uint32(0))
	f.Add([]byte("evil:x:4294967295:0::/evil:/bin/sh\nx:x:-1:0::/x:/bin/sh\n"), []byte("g:x:4294967295:evil\n"), uint32(math.MaxUint32), uint32(0), uint32(1))
	f.Add([]byte("broken:x:notanumber:0::/b:/bin/sh\n+nis:x:7:7::/n:/bin/sh\n#c:x:7:7::/c:/bin/sh\n"), []byte(":x:1:broken\n"), uint32(7), uint32(7), uint32(7))
	f.Fuzz(func(t *testing.T, passwd, group []byte, uid, gid, extra uint32) {
		u := specs.User{UID: uid, GID: gid, AdditionalGids: []uint32{extra, extra}}
		id, err := ResolveUser(u, bytes.NewReader(passwd), bytes.NewReader(group))
		if err != nil {
			// Only an over-long line is an error for in-memory files.
			if len(passwd) <= maxEntryLine && len(group) <= maxEntryLine {
				t.Fatalf("error on short files: %v", err)
			}
			return
		}
		if id.UID != uid || id.GID != gid {
			t.Fatalf("ids changed: %d:%d -> %d:%d", uid, gid, id.UID, id.GID)
		}
		if id.Home == "" {
			t.Fatal("empty home")
		}
		seen := map[uint32]bool{}
		for _, g := range id.AdditionalGids {
			if seen[g] {
				t.Fatalf("duplicate gid %d in %v", g, id.AdditionalGids)
			}
			seen[g] = true
		}
		if !seen[extra] {
			t.Fatalf("spec gid %d missing from %v", extra, id.AdditionalGids)
		}
		if id.Home != "/" && !passwdHasHome(passwd, uid, id.Home) {
			t.Fatalf("home %q is not that of a passwd entry with uid %d", id.Home, uid)
		}
	})
}

// passwdHasHome reports whether a line of passwd has exactly uid (decimal,
// not -1) in its uid field and home in its home field.
func passwdHasHome(passwd []byte, uid uint32, home string) bool {
	for _, line := range strings.Split(string(passwd), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) < 7 || f[5] != home {
			continue
		}
		if n, ok := parseID(f[2]); ok && n == uid {
			return true
		}
	}
	return false
}

// FuzzCapabilities checks process.capabilities: no panic; an unknown name
// or a set that breaks capset(2)'s rules is a FieldError under
// process.capabilities; what is accepted has every name's bit and nothing
// else, effective ⊆ permitted, inheritable ⊆ bounding and ambient ⊆
// permitted ∩ inheritable.
func FuzzCapabilities(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}`,
		`{"bounding":["CAP_NET_BIND_SERVICE"],"inheritable":["CAP_NET_BIND_SERVICE"],"permitted":["CAP_NET_BIND_SERVICE"],"ambient":["CAP_NET_BIND_SERVICE"]}`,
		`{"effective":["CAP_SYS_ADMIN"]}`,
		`{"bounding":["CAP_LAST_CAP","cap_chown","CAP_BOGUS",""]}`,
		`{"ambient":["CAP_CHECKPOINT_RESTORE"],"permitted":["CAP_CHECKPOINT_RESTORE"],"inheritable":["CAP_CHECKPOINT_RESTORE"],"bounding":["CAP_CHECKPOINT_RESTORE"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c specs.LinuxCapabilities
		if json.Unmarshal(data, &c) != nil {
			return
		}
		caps, err := capabilities(&c)
		if err != nil {
			asFieldError(t, err, "process.capabilities.")
			return
		}
		for _, set := range []struct {
			names []string
			mask  uint64
		}{{c.Bounding, caps.Bounding}, {c.Effective, caps.Effective}, {c.Inheritable, caps.Inheritable},
			{c.Permitted, caps.Permitted}, {c.Ambient, caps.Ambient}} {
			var want uint64
			for _, n := range set.names {
				b, ok := CapabilityBit(n)
				if !ok {
					t.Fatalf("accepted unknown capability %q", n)
				}
				want |= 1 << b
			}
			if want != set.mask {
				t.Fatalf("names %q gave mask %#x, want %#x", set.names, set.mask, want)
			}
		}
		if caps.Effective&^caps.Permitted != 0 || caps.Inheritable&^caps.Bounding != 0 ||
			caps.Ambient&^(caps.Permitted&caps.Inheritable) != 0 {
			t.Fatalf("accepted sets break capset rules: %+v", caps)
		}
	})
}

// FuzzNewProcessPlan checks an exec's process.json (ExecProcessRequest.Spec)
// and the spec's process: no panic; errors are FieldErrors under
// "process"; an accepted plan has a program, no NUL in what reaches
// execve, an absolute clean cwd, oomScoreAdj in range, and no id of -1.
func FuzzNewProcessPlan(f *testing.F) {
	for _, seed := range []string{
		`{"args":["sh"],"cwd":"/"}`,
		`{"terminal":true,"user":{"uid":1000,"gid":1000,"additionalGids":[5]},"args":["/bin/ls","-l"],"env":["PATH=/bin","A=b"],"cwd":"/tmp/../tmp/","oomScoreAdj":500}`,
		`{"args":[],"cwd":"/"}`,
		`{"args":["a\u0000b"],"cwd":"/"}`,
		`{"args":["sh"],"env":["NOEQUALS"],"cwd":"relative"}`,
		`{"args":["sh"],"cwd":"/","user":{"uid":4294967295}}`,
		`{"args":["sh"],"cwd":"/","rlimits":[{"type":"RLIMIT_NOFILE","soft":2048,"hard":1024}],"oomScoreAdj":-1001}`,
		`{"args":["sh"],"cwd":"/","capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"]},"noNewPrivileges":true,"apparmorProfile":"x","selinuxLabel":"a:b:c:d"}`,
		`{"args":["sh"],"cwd":"/","scheduler":{"policy":"SCHED_FIFO","priority":1},"ioPriority":{"class":"IOPRIO_CLASS_RT","priority":0},"execCPUAffinity":{"initial":"0","final":"0-1"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p specs.Process
		if json.Unmarshal(data, &p) != nil {
			return
		}
		plan, err := NewProcessPlan(&p)
		if err != nil {
			asFieldError(t, err, "process")
			return
		}
		if len(plan.Args) == 0 || plan.Args[0] == "" {
			t.Fatalf("accepted no program: %q", plan.Args)
		}
		for _, s := range slices.Concat(plan.Args, plan.Env) {
			if strings.ContainsRune(s, 0) {
				t.Fatalf("accepted a NUL in %q", s)
			}
		}
		if !path.IsAbs(plan.Cwd) || path.Clean(plan.Cwd) != plan.Cwd {
			t.Fatalf("accepted cwd %q", plan.Cwd)
		}
		if a := plan.OOMScoreAdj; a != nil && (*a < -1000 || *a > 1000) {
			t.Fatalf("accepted oomScoreAdj %d", *a)
		}
		if plan.User.UID == math.MaxUint32 || plan.User.GID == math.MaxUint32 || slices.Contains(plan.User.AdditionalGids, math.MaxUint32) {
			t.Fatalf("accepted id -1: %+v", plan.User)
		}
	})
}

// FuzzIDMappings checks linux.uidMappings and gidMappings of a container
// with a new user namespace: no panic; errors are FieldErrors under linux;
// what is accepted is what the kernel's uid_map accepts: at most 340
// non-empty ranges that neither overflow the 32-bit id space nor overlap on
// either side.
func FuzzIDMappings(f *testing.F) {
	for _, seed := range []string{
		`{"uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],"gidMappings":[{"containerID":0,"hostID":100000,"size":65536}]}`,
		`{"uidMappings":[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65535}],"gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}`,
		`{"uidMappings":[{"containerID":0,"hostID":0,"size":0}],"gidMappings":[]}`,
		`{"uidMappings":[{"containerID":4294967295,"hostID":0,"size":1}],"gidMappings":[{"containerID":0,"hostID":4294967290,"size":10}]}`,
		`{"uidMappings":[{"containerID":0,"hostID":10,"size":10},{"containerID":5,"hostID":100,"size":10}],"gidMappings":[{"containerID":0,"hostID":10,"size":10},{"containerID":50,"hostID":15,"size":10}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var l specs.Linux
		if json.Unmarshal(data, &l) != nil {
			return
		}
		l.Namespaces = []specs.LinuxNamespace{{Type: specs.UserNamespace}, {Type: specs.MountNamespace}, {Type: specs.PIDNamespace}}
		s := &specs.Spec{
			Version: specs.Version,
			Root:    &specs.Root{Path: "rootfs"},
			Process: &specs.Process{Args: []string{"sh"}, Cwd: "/"},
			Linux:   &l,
		}
		_, err := NewPlan(s, "/bundle")
		if err != nil {
			asFieldError(t, err, "linux")
			return
		}
		for _, maps := range [][]specs.LinuxIDMapping{l.UIDMappings, l.GIDMappings} {
			if len(maps) == 0 || len(maps) > 340 {
				t.Fatalf("accepted %d mappings", len(maps))
			}
			for i, m := range maps {
				if m.Size == 0 || uint64(m.ContainerID)+uint64(m.Size) > math.MaxUint32 || uint64(m.HostID)+uint64(m.Size) > math.MaxUint32 {
					t.Fatalf("accepted mapping %+v", m)
				}
				for _, o := range maps[:i] {
					if rangesOverlap(m.ContainerID, o.ContainerID, m.Size, o.Size) || rangesOverlap(m.HostID, o.HostID, m.Size, o.Size) {
						t.Fatalf("accepted overlapping mappings %+v and %+v", o, m)
					}
				}
			}
		}
	})
}

// rangesOverlap reports whether [a, a+na) and [b, b+nb) intersect.
func rangesOverlap(a, b, na, nb uint32) bool {
	return uint64(a) < uint64(b)+uint64(nb) && uint64(b) < uint64(a)+uint64(na)
}

// FuzzCgroupsPath checks linux.cgroupsPath: no panic; a refusal is a
// FieldError; an accepted path, joined below any hierarchy's mount point,
// stays below it (no ".." climbs out), in both the cgroupfs ("/a/b") and
// systemd ("slice:prefix:name") forms.
func FuzzCgroupsPath(f *testing.F) {
	for _, seed := range []string{"", "/box/c1", "box/c1", "/a/../../etc", "system.slice:box:c1", "..:x:y",
		"/a/./b//c/", "a:..", "/..", "\x00", "/proc/self"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := cgroupsPath(p)
		if err != nil {
			asFieldError(t, err, "linux.cgroupsPath")
			return
		}
		for _, part := range strings.FieldsFunc(got, func(r rune) bool { return r == '/' || r == ':' }) {
			if part == ".." {
				t.Fatalf("accepted %q as %q with a .. component", p, got)
			}
		}
		const mount = "/sys/fs/cgroup/memory"
		if j := path.Join(mount, got); j != mount && !strings.HasPrefix(j, mount+"/") {
			t.Fatalf("accepted %q (%q) reaches %q", p, got, j)
		}
	})
}
