//go:build linux

package rootfs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestPrepareFinalize builds a container root from containerd's default
// spec plus two binds and checks from inside it: mounts, devices, links,
// masked and readonly paths, the readonly root, and that no host mount shows.
func TestPrepareFinalize(t *testing.T) {
	root := newRootfs(t, map[string]string{"etc/secret": "SECRET\n"})
	hostDir := t.TempDir()
	writeFile(t, filepath.Join(hostDir, "marker"), "from-host\n")
	hostFile := filepath.Join(t.TempDir(), "hostname")
	writeFile(t, hostFile, "box-test\n")

	s := &specs.Spec{
		Root: &specs.Root{Readonly: true},
		Mounts: append(defaultMounts(),
			specs.Mount{Destination: "/data", Type: "bind", Source: hostDir, Options: []string{"rbind", "ro", "nosuid", "rprivate"}},
			specs.Mount{Destination: "/etc/hostname", Type: "bind", Source: hostFile, Options: []string{"rbind", "ro"}},
		),
		Linux: &specs.Linux{
			MaskedPaths:   append(defaultMasked, "/etc/secret", "/does/not/exist"),
			ReadonlyPaths: append(defaultReadonly, "/does/not/exist/either"),
		},
	}
	r := child{
		plan: newPlan(t, root, s),
		env:  []string{envCgroup + "=" + fakeCgroupFile(t)},
		script: `
echo "== mountinfo"; cat /proc/self/mountinfo
echo "== null"; stat -c '%F %t:%T %a %u:%g' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty
echo "== links"; for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done
echo "== secret"; cat /etc/secret /proc/keys /proc/timer_list; ls -A /proc/acpi; ls -A /sys/firmware
echo "== sysctl"; { echo box > /proc/sys/kernel/domainname; } 2>&1
echo "== rootwrite"; touch /newfile 2>&1
echo "== shm"; echo hi > /dev/shm/x && cat /dev/shm/x
echo "== data"; cat /data/marker; touch /data/new 2>&1
echo "== hostname"; cat /etc/hostname
echo "== cgroup"; ls /sys/fs/cgroup; mkdir /sys/fs/cgroup/x 2>&1; mkdir /sys/fs/cgroup/cpu/box-test-x 2>&1
echo "== end"
`,
	}.run(t)
	if r.code != 0 {
		t.Fatalf("child exited %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	out := sections(r.stdout)
	if _, ok := out["end"]; !ok {
		t.Fatalf("script did not finish:\n%s", r.stdout)
	}

	t.Run("mounts", func(t *testing.T) {
		ms, err := parseMountinfo(out["mountinfo"])
		if err != nil {
			t.Fatal(err)
		}
		var points []string
		for _, m := range ms {
			points = append(points, m.mountpoint)
			ok := slices.Contains([]string{"/", "/data", "/etc/hostname", "/etc/secret"}, m.mountpoint) ||
				isUnder(m.mountpoint, "/proc") || isUnder(m.mountpoint, "/dev") || isUnder(m.mountpoint, "/sys")
			if !ok {
				t.Errorf("host mount visible in the container: %s", m.mountpoint)
			}
		}
		for _, want := range []string{"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
			"/sys/fs/cgroup", "/sys/fs/cgroup/cpu", "/data", "/etc/hostname",
			"/proc/sys", "/proc/fs", "/proc/acpi", "/proc/keys", "/sys/firmware", "/etc/secret"} {
			if !slices.Contains(points, want) {
				t.Errorf("no mount on %s; mounts: %q", want, points)
			}
		}
	})
	for _, tc := range []struct{ section, want string }{
		{"null", "character special file 1:3 666 0:0\ncharacter special file 1:5 666 0:0\n" +
			"character special file 1:7 666 0:0\ncharacter special file 1:8 666 0:0\n" +
			"character special file 1:9 666 0:0\ncharacter special file 5:0 666 0:0\n"},
		{"links", "/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\npts/ptmx\n"},
		{"secret", ""},
		{"shm", "hi\n"},
		{"hostname", "box-test\n"},
	} {
		if got := out[tc.section]; got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.section, got, tc.want)
		}
	}
	for _, section := range []string{"sysctl", "rootwrite", "data", "cgroup"} {
		if n := strings.Count(out[section], "Read-only file system"); n == 0 || (section == "cgroup" && n != 2) {
			t.Errorf("%s: writes not refused with EROFS: %q", section, out[section])
		}
	}
	if !strings.HasPrefix(out["data"], "from-host\n") {
		t.Errorf("bind mount content: %q", out["data"])
	}
	if !strings.Contains(out["cgroup"], "cpu\n") || !strings.Contains(out["cgroup"], "memory\n") {
		t.Errorf("cgroup view: %q", out["cgroup"])
	}
	if _, err := os.Stat(filepath.Join(root, "etc/hostname")); err != nil {
		t.Errorf("file mountpoint not created inside the rootfs: %v", err)
	}
}

// TestReadonlyPathControl is the negative control of the readonly checks
// in TestPrepareFinalize: without readonlyPaths and a readonly root, the
// same writes succeed.
func TestReadonlyPathControl(t *testing.T) {
	root := newRootfs(t, nil)
	s := &specs.Spec{Mounts: defaultMounts()[:2]}
	r := child{
		plan:   newPlan(t, root, s),
		script: "echo box > /proc/sys/kernel/domainname && cat /proc/sys/kernel/domainname && touch /newfile && echo ok",
	}.run(t)
	if r.code != 0 || r.stdout != "box\nok\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestRootPropagationShared checks that a shared root propagation survives
// pivot_root (which refuses shared mounts) and ends up on the container's "/".
func TestRootPropagationShared(t *testing.T) {
	root := newRootfs(t, nil)
	p := newPlan(t, root, &specs.Spec{Mounts: defaultMounts()[:2]})
	p.RootPropagation = unix.MS_SHARED | unix.MS_REC
	r := child{plan: p, script: "cat /proc/self/mountinfo"}.run(t)
	if r.code != 0 {
		t.Fatalf("child exited %d: %s", r.code, r.stderr)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 6 && f[4] == "/" {
			if !strings.HasPrefix(f[6], "shared:") {
				t.Errorf("/ is not shared: %q", line)
			}
			return
		}
	}
	t.Errorf("no / in mountinfo:\n%s", r.stdout)
}

// escapeFixture makes a rootfs whose "evil" is a symlink to
// /../../../<host dir>, and checks that the fixture really escapes when
// resolved on the host.
func escapeFixture(t *testing.T) (root, hostDir string) {
	t.Helper()
	root = newRootfs(t, nil)
	hostDir = filepath.Join(t.TempDir(), "outside-marker-dir")
	if err := os.Mkdir(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/../../../"+hostDir, filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	if got, err := filepath.EvalSymlinks(filepath.Join(root, "evil")); err != nil || got != hostDir {
		t.Fatalf("fixture does not escape: %q, %v", got, err)
	}
	return root, hostDir
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestMountSymlinkEscape checks that a mount destination through a symlink
// out of the rootfs creates and mounts only inside the rootfs (or is refused
// when the in-root target is missing), and that the naive filepath.Join
// implementation would have written to the host.
func TestMountSymlinkEscape(t *testing.T) {
	mounts := []specs.Mount{
		{Destination: "/evil/dir", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/evil/file", Type: "bind", Source: "/etc/hostname", Options: []string{"bind", "ro"}},
	}
	t.Run("in-root", func(t *testing.T) {
		root, hostDir := escapeFixture(t)
		// The symlink's target as seen from inside the rootfs.
		inside := filepath.Join(root, hostDir)
		if err := os.MkdirAll(inside, 0o755); err != nil {
			t.Fatal(err)
		}
		r := child{plan: newPlan(t, root, &specs.Spec{Mounts: mounts}), script: "ls /evil"}.run(t)
		if r.code != 0 {
			t.Fatalf("child exited %d: %s", r.code, r.stderr)
		}
		if names := dirEntries(t, hostDir); len(names) != 0 {
			t.Errorf("created outside the rootfs: %q", names)
		}
		if names := dirEntries(t, inside); !slices.Equal(names, []string{"dir", "file"}) {
			t.Errorf("inside the rootfs: %q, want [dir file]", names)
		}
		if r.stdout != "dir\nfile\n" {
			t.Errorf("container sees %q in /evil", r.stdout)
		}
	})
	t.Run("dangling-in-root", func(t *testing.T) {
		root, hostDir := escapeFixture(t)
		r := child{plan: newPlan(t, root, &specs.Spec{Mounts: mounts}), script: "true"}.run(t)
		if r.code != exitPrepare || !strings.Contains(r.stderr, "mount tmpfs on /evil/dir") {
			t.Errorf("not refused: exit %d, stderr %q", r.code, r.stderr)
		}
		if names := dirEntries(t, hostDir); len(names) != 0 {
			t.Errorf("created outside the rootfs: %q", names)
		}
	})
	t.Run("naive-control", func(t *testing.T) {
		root, hostDir := escapeFixture(t)
		// The naive code escapes, then fails to find the mount it made
		// (in-root); what matters here is what it did to the host.
		child{
			plan:   newPlan(t, root, &specs.Spec{Mounts: mounts}),
			script: "true",
			env:    []string{envNaiveMkdir + "=1"},
		}.run(t)
		if names := dirEntries(t, hostDir); !slices.Equal(names, []string{"dir", "file"}) {
			t.Errorf("naive implementation did not escape (test proves nothing): %q", names)
		}
	})
}

// TestMaskRefusesFakeDevNull checks that masking a file fails when /dev/null
// is a symlink or a regular file, and that without the check the mask would
// show the attacker's file.
func TestMaskRefusesFakeDevNull(t *testing.T) {
	s := &specs.Spec{
		Mounts: defaultMounts()[:2], // /proc, /dev tmpfs
		Linux:  &specs.Linux{MaskedPaths: []string{"/etc/secret"}},
	}
	files := map[string]string{"etc/secret": "SECRET\n", "etc/hostile": "HOSTILE\n"}
	for _, kind := range []string{"symlink", "regular"} {
		t.Run(kind, func(t *testing.T) {
			root := newRootfs(t, files)
			r := child{
				plan:   newPlan(t, root, s),
				script: "cat /etc/secret",
				env:    []string{envFakeDevNull + "=" + kind},
			}.run(t)
			if r.code != exitFinalize || !strings.Contains(r.stderr, "finalize: invalid=true") ||
				!strings.Contains(r.stderr, "not the character device 1:3") {
				t.Errorf("masking not refused: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
		})
		t.Run(kind+"-unverified-control", func(t *testing.T) {
			root := newRootfs(t, files)
			r := child{
				plan:   newPlan(t, root, s),
				script: "cat /etc/secret",
				env:    []string{envFakeDevNull + "=" + kind, envNaiveNull + "=1"},
			}.run(t)
			if r.code != 0 || r.stdout != "HOSTILE\n" {
				t.Errorf("unverified /dev/null did not expose the attack (test proves nothing): exit %d, stdout %q, stderr %q",
					r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestProcSymlinkRefused checks that procfs and sysfs are not mounted where a
// symlink points.
func TestProcSymlinkRefused(t *testing.T) {
	for _, m := range defaultMounts() {
		if m.Type != "proc" && m.Type != "sysfs" {
			continue
		}
		t.Run(m.Type, func(t *testing.T) {
			root := newRootfs(t, nil)
			link := filepath.Join(root, strings.TrimPrefix(m.Destination, "/"))
			if err := os.Remove(link); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(root, "fake"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/fake", link); err != nil {
				t.Fatal(err)
			}
			r := child{plan: newPlan(t, root, &specs.Spec{Mounts: []specs.Mount{m}}), script: "true"}.run(t)
			if r.code != exitPrepare || !strings.Contains(r.stderr, "prepare: invalid=true") ||
				!strings.Contains(r.stderr, "is a symlink") {
				t.Errorf("not refused: exit %d, stderr %q", r.code, r.stderr)
			}
		})
	}
	// Control: the same mounts through a real directory succeed.
	t.Run("directory-control", func(t *testing.T) {
		root := newRootfs(t, nil)
		r := child{plan: newPlan(t, root, &specs.Spec{Mounts: defaultMounts()[:1]}), script: "cat /proc/self/comm"}.run(t)
		if r.code != 0 || r.stdout != "cat\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
}

// TestDevSymlinkRefused checks that device nodes are not made through a
// /dev that is a symlink out of the rootfs, which does escape on the host.
func TestDevSymlinkRefused(t *testing.T) {
	root, hostDir := escapeFixture(t)
	if err := os.Remove(filepath.Join(root, "dev")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "evil"), filepath.Join(root, "dev")); err != nil {
		t.Fatal(err)
	}
	r := child{plan: newPlan(t, root, &specs.Spec{Mounts: defaultMounts()[:1]}), script: "true"}.run(t)
	if r.code != exitPrepare || !strings.Contains(r.stderr, "prepare: invalid=true") ||
		!strings.Contains(r.stderr, "/dev is a symlink") {
		t.Errorf("not refused: exit %d, stderr %q", r.code, r.stderr)
	}
	if names := dirEntries(t, hostDir); len(names) != 0 {
		t.Errorf("created outside the rootfs: %q", names)
	}
}
