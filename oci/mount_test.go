package oci

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestParseMountOptions checks the flags, propagation and data of every option.
func TestParseMountOptions(t *testing.T) {
	for _, tc := range []struct {
		opts  []string
		flags uintptr
		prop  []uintptr
		data  string
	}{
		{opts: nil},
		{opts: []string{"ro"}, flags: unix.MS_RDONLY},
		{opts: []string{"ro", "rw"}},
		{opts: []string{"rw", "ro"}, flags: unix.MS_RDONLY},
		{opts: []string{"nosuid"}, flags: unix.MS_NOSUID},
		{opts: []string{"nosuid", "suid"}},
		{opts: []string{"nodev"}, flags: unix.MS_NODEV},
		{opts: []string{"nodev", "dev"}},
		{opts: []string{"noexec"}, flags: unix.MS_NOEXEC},
		{opts: []string{"noexec", "exec"}},
		{opts: []string{"sync"}, flags: unix.MS_SYNCHRONOUS},
		{opts: []string{"sync", "async"}},
		{opts: []string{"dirsync"}, flags: unix.MS_DIRSYNC},
		{opts: []string{"remount"}, flags: unix.MS_REMOUNT},
		{opts: []string{"mand"}, flags: unix.MS_MANDLOCK},
		{opts: []string{"mand", "nomand"}},
		{opts: []string{"noatime"}, flags: unix.MS_NOATIME},
		{opts: []string{"noatime", "atime"}},
		{opts: []string{"nodiratime"}, flags: unix.MS_NODIRATIME},
		{opts: []string{"nodiratime", "diratime"}},
		{opts: []string{"relatime"}, flags: unix.MS_RELATIME},
		{opts: []string{"relatime", "norelatime"}},
		{opts: []string{"strictatime"}, flags: unix.MS_STRICTATIME},
		{opts: []string{"strictatime", "nostrictatime"}},
		{opts: []string{"nosymfollow"}, flags: unix.MS_NOSYMFOLLOW},
		{opts: []string{"nosymfollow", "symfollow"}},
		{opts: []string{"bind"}, flags: unix.MS_BIND},
		{opts: []string{"rbind"}, flags: unix.MS_BIND | unix.MS_REC},
		{opts: []string{"shared"}, prop: []uintptr{unix.MS_SHARED}},
		{opts: []string{"rshared"}, prop: []uintptr{unix.MS_SHARED | unix.MS_REC}},
		{opts: []string{"private"}, prop: []uintptr{unix.MS_PRIVATE}},
		{opts: []string{"rprivate"}, prop: []uintptr{unix.MS_PRIVATE | unix.MS_REC}},
		{opts: []string{"slave"}, prop: []uintptr{unix.MS_SLAVE}},
		{opts: []string{"rslave"}, prop: []uintptr{unix.MS_SLAVE | unix.MS_REC}},
		{opts: []string{"unbindable"}, prop: []uintptr{unix.MS_UNBINDABLE}},
		{opts: []string{"runbindable"}, prop: []uintptr{unix.MS_UNBINDABLE | unix.MS_REC}},
		{opts: []string{"rprivate", "unbindable"}, prop: []uintptr{unix.MS_PRIVATE | unix.MS_REC, unix.MS_UNBINDABLE}},
		{opts: []string{"mode=755", "size=65536k"}, data: "mode=755,size=65536k"},
		{
			opts:  []string{"nosuid", "mode=620", "noexec", "gid=5", "rslave"},
			flags: unix.MS_NOSUID | unix.MS_NOEXEC,
			prop:  []uintptr{unix.MS_SLAVE | unix.MS_REC},
			data:  "mode=620,gid=5",
		},
	} {
		m, err := ParseMount(specs.Mount{Destination: "/mnt", Type: "tmpfs", Source: "tmpfs", Options: tc.opts})
		if err != nil {
			t.Errorf("%q: %v", tc.opts, err)
			continue
		}
		if m.Flags != tc.flags || !slices.Equal(m.PropagationFlags, tc.prop) || m.Data != tc.data {
			t.Errorf("%q: got flags %#x prop %#x data %q, want %#x %#x %q",
				tc.opts, m.Flags, m.PropagationFlags, m.Data, tc.flags, tc.prop, tc.data)
		}
	}
}

// TestParseMountBind checks that type "bind" and the bind options both make bind mounts.
func TestParseMountBind(t *testing.T) {
	for _, tc := range []struct {
		typ   string
		opts  []string
		flags uintptr
	}{
		{typ: "bind", flags: unix.MS_BIND},
		{typ: "bind", opts: []string{"rbind", "ro"}, flags: unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY},
		{typ: "", opts: []string{"bind"}, flags: unix.MS_BIND},
		{typ: "none", opts: []string{"rbind"}, flags: unix.MS_BIND | unix.MS_REC},
		{typ: "tmpfs", flags: 0},
	} {
		m, err := ParseMount(specs.Mount{Destination: "/x", Type: tc.typ, Source: "/src", Options: tc.opts})
		if err != nil {
			t.Fatalf("%s %q: %v", tc.typ, tc.opts, err)
		}
		if m.Flags != tc.flags || m.IsBind() != (tc.flags&unix.MS_BIND != 0) {
			t.Errorf("%s %q: got %#x, want %#x", tc.typ, tc.opts, m.Flags, tc.flags)
		}
		if m.Source != "/src" || m.Type != tc.typ || m.Data != "" {
			t.Errorf("%s %q: got %+v", tc.typ, tc.opts, m)
		}
	}
}

// TestParseMountDestination checks that destinations are cleaned and must be absolute.
func TestParseMountDestination(t *testing.T) {
	m, err := ParseMount(specs.Mount{Destination: "/a/./b/../c/", Type: "tmpfs"})
	if err != nil || m.Destination != "/a/c" {
		t.Fatalf("got %q, %v; want /a/c", m.Destination, err)
	}
	for _, dest := range []string{"", "relative", "./x", "../x", "/a\x00b"} {
		_, err := ParseMount(specs.Mount{Destination: dest, Type: "tmpfs"})
		assertFieldError(t, err, "destination")
	}
}

// TestParseMountErrors checks the options and fields that are refused, and
// that refused options never reach Data.
func TestParseMountErrors(t *testing.T) {
	_, err := ParseMount(specs.Mount{Destination: "/x", Options: []string{"size=1\x00"}})
	assertFieldError(t, err, "options[0]")
	_, err = ParseMount(specs.Mount{Destination: "/x", Source: "a\x00"})
	assertFieldError(t, err, "source")
	_, err = ParseMount(specs.Mount{Destination: "/x", Type: "bind", UIDMappings: []specs.LinuxIDMapping{{Size: 1}}})
	assertFieldError(t, err, "gidMappings")
}

// TestParseMountIDMap checks idmapped mounts: the options, the mappings
// (both needed, each validated like a user namespace's), bind mounts only.
func TestParseMountIDMap(t *testing.T) {
	one := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
	for _, tc := range []struct {
		opts      []string
		uid, gid  []specs.LinuxIDMapping
		recursive bool
		withMaps  bool
	}{
		{[]string{"rbind", "idmap"}, nil, nil, false, false},
		{[]string{"rbind", "ridmap"}, nil, nil, true, false},
		{[]string{"bind"}, one, one, false, true},
		{[]string{"rbind", "ridmap"}, one, one, true, true},
	} {
		m, err := ParseMount(specs.Mount{Destination: "/x", Type: "bind", Source: "/s", Options: tc.opts, UIDMappings: tc.uid, GIDMappings: tc.gid})
		if err != nil || m.IDMap == nil || m.IDMap.Recursive != tc.recursive || (len(m.IDMap.UIDMappings) > 0) != tc.withMaps || m.Data != "" {
			t.Errorf("%v %v: got %+v, %v", tc.opts, tc.uid, m.IDMap, err)
		}
	}
	for _, tc := range []struct {
		m     specs.Mount
		field string
	}{
		{specs.Mount{Destination: "/x", Type: "tmpfs", Options: []string{"idmap"}}, "options"},
		{specs.Mount{Destination: "/x", Type: "tmpfs", UIDMappings: one, GIDMappings: one}, "options"},
		{specs.Mount{Destination: "/x", Type: "bind", GIDMappings: one}, "uidMappings"},
		{specs.Mount{Destination: "/x", Type: "bind", UIDMappings: one}, "gidMappings"},
		{specs.Mount{Destination: "/x", Type: "bind", UIDMappings: []specs.LinuxIDMapping{{HostID: 1, Size: 0}}, GIDMappings: one}, "uidMappings[0].size"},
		{specs.Mount{Destination: "/x", Type: "bind", UIDMappings: one, GIDMappings: []specs.LinuxIDMapping{{HostID: 4294967290, Size: 10}}}, "gidMappings[0]"},
	} {
		_, err := ParseMount(tc.m)
		assertFieldError(t, err, tc.field)
	}
}

// TestPlanIDMaps checks a bare "idmap" takes the container's mappings, or
// its joined user namespace, and is refused without a user namespace.
func TestPlanIDMaps(t *testing.T) {
	bare := specs.Mount{Destination: "/data", Type: "bind", Source: "/host", Options: []string{"rbind", "ridmap"}}
	s := validSpec()
	s.Mounts = append(s.Mounts, bare)
	_, err := NewPlan(s, "/b")
	wantFieldError(t, err, fmt.Sprintf("mounts[%d].options", len(s.Mounts)-1), "no")

	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 200000, Size: 65536}}
	p, err := NewPlan(s, "/b")
	if err != nil {
		t.Fatal(err)
	}
	im := p.Mounts[len(p.Mounts)-1].IDMap
	if im == nil || !im.Recursive || im.ContainerUserNS || im.UIDMappings[0].HostID != 100000 || im.GIDMappings[0].HostID != 200000 {
		t.Errorf("new user namespace: %+v", im)
	}

	s.Linux.Namespaces[len(s.Linux.Namespaces)-1].Path = "/proc/7/ns/user"
	if p, err = NewPlan(s, "/b"); err != nil {
		t.Fatal(err)
	}
	if im := p.Mounts[len(p.Mounts)-1].IDMap; im == nil || !im.ContainerUserNS || len(im.UIDMappings) != 0 {
		t.Errorf("joined user namespace: %+v", im)
	}
}

// TestMounts checks that Mounts keeps spec order and names the failing mount.
func TestMounts(t *testing.T) {
	s := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/data", Type: "bind", Source: "/host/data", Options: []string{"rbind", "ro", "rprivate"}},
	}}
	ms, err := Mounts(s)
	if err != nil {
		t.Fatal(err)
	}
	var dests []string
	for _, m := range ms {
		dests = append(dests, m.Destination)
	}
	if !slices.Equal(dests, []string{"/proc", "/dev", "/data"}) {
		t.Errorf("order: %q", dests)
	}
	if ms[1].Flags != unix.MS_NOSUID|unix.MS_STRICTATIME || ms[1].Data != "mode=755,size=65536k" {
		t.Errorf("/dev: %+v", ms[1])
	}

	s.Mounts = append(s.Mounts, specs.Mount{Destination: "rel", Type: "tmpfs"})
	_, err = Mounts(s)
	assertFieldError(t, err, "mounts[3].destination")

	s.Mounts[3] = specs.Mount{Destination: "/x", Options: []string{"ro", "idmap"}}
	_, err = Mounts(s)
	assertFieldError(t, err, "mounts[3].options")

	if ms, err := Mounts(&specs.Spec{}); err != nil || len(ms) != 0 {
		t.Errorf("no mounts: %v %v", ms, err)
	}
}

// FuzzParseMount checks that ParseMount never panics and accepts only
// absolute, clean destinations with no NUL and no unsupported option in Data.
func FuzzParseMount(f *testing.F) {
	f.Add("/dev/pts", "devpts", "devpts", "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5")
	f.Add("/data", "bind", "/host", "rbind,ro,rprivate")
	f.Add("rel/../x", "", "", "rro")
	f.Add("/a/../../b", "tmpfs", "", ",,")
	f.Fuzz(func(t *testing.T, dest, typ, source, opts string) {
		m, err := ParseMount(specs.Mount{Destination: dest, Type: typ, Source: source, Options: strings.Split(opts, ",")})
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error not InvalidArgument: %v", err)
			}
			return
		}
		if !filepath.IsAbs(m.Destination) || filepath.Clean(m.Destination) != m.Destination ||
			strings.ContainsRune(m.Destination, 0) {
			t.Fatalf("accepted destination %q", m.Destination)
		}
		for _, o := range strings.Split(m.Data, ",") {
			if _, idmap := idmapOptions[o]; idmap || mountFlags[o] != (mountFlag{}) || propagationFlags[o] != 0 {
				t.Fatalf("option %q in data %q", o, m.Data)
			}
		}
	})
}

// assertFieldError fails t unless err is an InvalidArgument *FieldError for field.
func assertFieldError(t *testing.T, err error, field string) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != field || !errdefs.IsInvalidArgument(err) {
		t.Errorf("got %v, want an InvalidArgument error for %s", err, field)
	}
}

// TestParseMountRecursive checks the recursive options: each sets or clears
// its MOUNT_ATTR_* flag, a later option wins, and none reaches Data.
func TestParseMountRecursive(t *testing.T) {
	for o, a := range recursiveAttrs {
		m, err := ParseMount(specs.Mount{Destination: "/x", Type: "bind", Options: []string{"rbind", o}})
		if err != nil || m.RecAttrSet != a.set || m.RecAttrClr != a.clr || m.Data != "" {
			t.Errorf("%s: %+v, %v", o, m, err)
		}
	}
	m, err := ParseMount(specs.Mount{Destination: "/x", Type: "bind", Options: []string{"rbind", "rro", "rnosuid", "rrw"}})
	if err != nil || m.RecAttrSet != unix.MOUNT_ATTR_NOSUID || m.RecAttrClr != unix.MOUNT_ATTR_RDONLY {
		t.Errorf("rro then rrw: set %#x clr %#x, %v", m.RecAttrSet, m.RecAttrClr, err)
	}
	if got := RecursiveMountOptions(); len(got) != len(recursiveAttrs) || !slices.IsSorted(got) {
		t.Errorf("RecursiveMountOptions() = %v", got)
	}
}
