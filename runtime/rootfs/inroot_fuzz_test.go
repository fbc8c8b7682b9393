//go:build linux

package rootfs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// symlinkForest makes, below a new temp dir, a rootfs "root" holding
// a/b/, a file f and three symlinks with the given targets (l, a/l and
// a/b/l), and a sibling "outside" directory with a marker file that nothing
// done inside root may touch. It returns the open root and outside's path.
func symlinkForest(t *testing.T, targets [3]string) (*os.File, string) {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "a/b"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(root, "f"), filepath.Join(outside, "marker")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range []string{"l", "a/l", "a/b/l"} {
		if err := os.Symlink(targets[i], filepath.Join(root, l)); err != nil {
			t.Skip("symlink target the kernel refuses")
		}
	}
	f, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, outside
}

// inode identifies a file.
type inode struct{ dev, ino uint64 }

func fdInode(fd int) (inode, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return inode{}, err
	}
	return inode{st.Dev, st.Ino}, nil
}

// FuzzInRoot checks the resolution every mount destination goes through,
// over forests of symlinks whose targets the fuzzer picks (absolute,
// relative, "..", through /proc):
//
//   - pathrs.OpenatInRoot (what mountOne reopens a destination with) finds
//     the same file as the kernel's openat2(RESOLVE_IN_ROOT), or fails when
//     the kernel does;
//   - mkMountpointInRoot (what makes a destination) returns a handle whose
//     file is inside the root, and never creates or changes anything in a
//     directory next to the root.
func FuzzInRoot(f *testing.F) {
	for _, seed := range []struct {
		t1, t2, t3, p string
		dir           bool
	}{
		{"a", "b", "..", "/l/b/l/f", false},
		{"/", "../..", "../../../outside", "/a/b/l/new", true},
		{"../../../../outside", "/a/b", "l", "/l/x/y", true},
		{"/proc/self/root", "/proc/self/cwd", "/proc/self/fd/3", "/a/l/l/x", true},
		{"l", "../l", "../../a/l", "/a/b/l/z", false},
		{"f", "/f", "../f", "/a/l/mnt", false},
		{"a/b/l", "/a/b/../l", "/../../..", "/l/../../../../outside/x", true},
	} {
		f.Add(seed.t1, seed.t2, seed.t3, seed.p, seed.dir)
	}
	f.Fuzz(func(t *testing.T, t1, t2, t3, p string, dir bool) {
		for _, s := range []string{t1, t2, t3, p} {
			if s == "" || len(s) > 256 || strings.ContainsRune(s, 0) {
				return
			}
		}
		root, outside := symlinkForest(t, [3]string{t1, t2, t3})

		want, werr := unix.Openat2(int(root.Fd()), p, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		got, gerr := pathrs.OpenatInRoot(root, p)
		switch {
		case werr == nil && gerr == nil:
			wi, err1 := fdInode(want)
			gi, err2 := fdInode(int(got.Fd()))
			if err1 != nil || err2 != nil || wi != gi {
				t.Errorf("OpenatInRoot(%q) found %v, openat2(RESOLVE_IN_ROOT) %v", p, gi, wi)
			}
		case werr == nil:
			t.Errorf("OpenatInRoot(%q) failed (%v), openat2(RESOLVE_IN_ROOT) found it", p, gerr)
		case gerr == nil:
			t.Errorf("OpenatInRoot(%q) found %s, openat2(RESOLVE_IN_ROOT) failed: %v", p, got.Name(), werr)
		}
		if werr == nil {
			unix.Close(want)
		}
		if got != nil {
			got.Close()
		}

		m, err := mkMountpointInRoot(root, p, dir)
		if err == nil {
			where, lerr := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(m.Fd())))
			rootPath, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(root.Fd())))
			if lerr != nil || !isUnder(where, rootPath) {
				t.Errorf("mountpoint %q made at %q, outside the root %q", p, where, rootPath)
			}
			m.Close()
		}
		if names := dirNames(t, outside); len(names) != 1 || names[0] != "marker" {
			t.Errorf("mountpoint %q changed the directory next to the root: %q", p, names)
		}
	})
}

func dirNames(t *testing.T, dir string) []string {
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
