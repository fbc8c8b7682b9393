package seccomp

import (
	"testing"

	cseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
)

// BenchmarkCompileContainerdDefault is the compile every container with
// containerd's default profile pays (in the daemon and in the init stage).
func BenchmarkCompileContainerdDefault(b *testing.B) {
	s := cseccomp.DefaultProfile(specWithCaps(defaultCaps...))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(s); err != nil {
			b.Fatal(err)
		}
	}
}
