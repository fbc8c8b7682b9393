package runtime

import (
	"path"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// FuzzSysctlKey checks sysctlPath on any linux.sysctl key: no panic; a
// refusal is errdefs.ErrInvalidArgument; an accepted key names a file
// strictly below /proc/sys (its path is clean, relative, has no NUL and
// does not climb out).
func FuzzSysctlKey(f *testing.F) {
	for _, seed := range []string{"net.ipv4.ip_forward", "kernel.shm_rmid_forced", "net/ipv4/conf/eth0.1/forwarding",
		"", ".", "..", "a..b", ".net", "net.", "/etc/passwd", "../../etc", "net/../../../x", "a\x00b", "fs.mqueue.msg_max"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		rel, err := sysctlPath(key)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error %v is not InvalidArgument", err)
			}
			return
		}
		if strings.ContainsRune(rel, 0) || path.Clean(rel) != rel || !strings.HasPrefix(rel, "sys/") {
			t.Fatalf("key %q gave path %q", key, rel)
		}
		if j := path.Join("/proc", rel); !strings.HasPrefix(j, "/proc/sys/") {
			t.Fatalf("key %q reaches %q", key, j)
		}
	})
}

// TestSysctlPath checks both key forms and the keys that must be refused.
func TestSysctlPath(t *testing.T) {
	for key, want := range map[string]string{
		"net.ipv4.ip_forward":             "sys/net/ipv4/ip_forward",
		"net/ipv4/conf/eth0.1/forwarding": "sys/net/ipv4/conf/eth0.1/forwarding",
		"":                                "",
		".net":                            "",
		"net..x":                          "",
		"/net/x":                          "",
		"net/../../x":                     "",
		"net/./x":                         "",
		"a\x00b":                          "",
	} {
		got, err := sysctlPath(key)
		if (want == "") != (err != nil) || got != want {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
}
