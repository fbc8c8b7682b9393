package core

import (
	"errors"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	Point string // mount point, unescaped
	Line  string // the raw line
}

// Mounts parses /proc/self/mountinfo (the caller's mount namespace).
func Mounts() []Mount {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var ms []Mount
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		ms = append(ms, Mount{Point: unescapeOctal(f[4]), Line: line})
	}
	return ms
}

// unescapeOctal decodes mountinfo's \040-style escapes.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := (int(s[i+1]-'0') << 6) | (int(s[i+2]-'0') << 3) | int(s[i+3]-'0')
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// UnmountUnder lazily unmounts every mount point at or below dir, deepest first. Mount points
// already gone are not errors.
func UnmountUnder(dir string) error {
	var mps []string
	for _, m := range Mounts() {
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			mps = append(mps, m.Point)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	var errs []error
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, &os.PathError{Op: "umount", Path: mp, Err: err})
		}
	}
	return errors.Join(errs...)
}
