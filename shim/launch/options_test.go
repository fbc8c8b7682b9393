package launch

import (
	"os"
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func anyOf(t *testing.T, url string, m proto.Message) *anypb.Any {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: url, Value: b}
}

// TestParseOptionsRunc checks that runc's options type is accepted and its
// portable fields kept, so switching runtime_type needs no other change.
func TestParseOptionsRunc(t *testing.T) {
	o, err := ParseOptions(anyOf(t, "containerd.runc.v1.Options", &runcoptions.Options{
		ShimCgroup: "/shims", IoUid: 1000, IoGid: 1001, NoPivotRoot: true, NoNewKeyring: true,
		BinaryName: "/usr/bin/runc", Root: "/run/runc",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Options{ShimCgroup: "/shims", IoUID: 1000, IoGID: 1001, NoPivotRoot: true, NoNewKeyring: true}
	if o != want {
		t.Fatalf("got %+v, want %+v", o, want)
	}
}

// TestParseOptionsCRI checks CRI's runtimeoptions with a TOML body and with
// a config file path.
func TestParseOptionsCRI(t *testing.T) {
	o, err := ParseOptions(anyOf(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{
		ConfigBody: []byte("ShimCgroup = \"/pods\"\nIoUid = 7\n"),
	}))
	if err != nil || o.ShimCgroup != "/pods" || o.IoUID != 7 {
		t.Fatalf("body: %+v, %v", o, err)
	}
	path := t.TempDir() + "/box.toml"
	if err := writeFile(path, "NoNewKeyring = true\n"); err != nil {
		t.Fatal(err)
	}
	o, err = ParseOptions(anyOf(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigPath: path}))
	if err != nil || !o.NoNewKeyring {
		t.Fatalf("path: %+v, %v", o, err)
	}
}

// TestParseOptionsErrors checks clear InvalidArgument errors for unknown
// types and garbage.
func TestParseOptionsErrors(t *testing.T) {
	for name, a := range map[string]*anypb.Any{
		"unknown type": {TypeUrl: "example.com/other.Options", Value: []byte{1}},
		"garbage runc": {TypeUrl: "containerd.runc.v1.Options", Value: []byte{0xff, 0xff, 0xff}},
		"bad toml":     anyOf(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigBody: []byte("IoUid = \"x\"")}),
	} {
		if _, err := ParseOptions(a); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
		}
	}
	if o, err := ParseOptions(nil); err != nil || o != (Options{}) {
		t.Errorf("nil options: %+v, %v", o, err)
	}
}

// TestParseOptionsSystemdCgroup checks SystemdCgroup is taken from both option types (it was
// refused before the systemd driver existed).
func TestParseOptionsSystemdCgroup(t *testing.T) {
	for name, a := range map[string]*anypb.Any{
		"runc": anyOf(t, "containerd.runc.v1.Options", &runcoptions.Options{SystemdCgroup: true}),
		"cri":  anyOf(t, "runtimeoptions.v1.Options", &runtimeoptions.Options{ConfigBody: []byte("SystemdCgroup = true\n")}),
	} {
		if o, err := ParseOptions(a); err != nil || !o.SystemdCgroup {
			t.Errorf("%s: %+v, %v; want SystemdCgroup", name, o, err)
		}
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
