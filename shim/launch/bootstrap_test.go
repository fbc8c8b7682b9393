package launch

import (
	"encoding/json"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var baseFlags = Flags{Namespace: "default", ID: "c1", Address: "/run/ctd.sock"}

// TestParseStartBootstrap checks that a containerd >= 2.3 BootstrapParams on
// stdin is recognised and its addresses and options win over the flags.
func TestParseStartBootstrap(t *testing.T) {
	dir := "/run/sockets"
	opts := &anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: []byte{1, 2}}
	bp := &bootapi.BootstrapParams{
		InstanceID: "c1", Namespace: "default",
		ContainerdGrpcAddress: "/run/new.sock", ContainerdTtrpcAddress: "/run/new.sock.ttrpc",
		SocketDir: &dir, LogLevel: bootapi.LogLevel_LOG_LEVEL_DEBUG,
	}
	if err := bp.AddExtension(opts); err != nil {
		t.Fatal(err)
	}
	in, err := proto.Marshal(bp)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseStart(baseFlags, in, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if p.proto != protoBootstrap || p.grpcAddress != "/run/new.sock" || p.ttrpcAddress != "/run/new.sock.ttrpc" || p.socketDir != dir || !p.debug {
		t.Fatalf("unexpected params %+v", p)
	}
	if p.options == nil {
		t.Fatal("runtime options extension lost")
	}
}

// TestParseStartLegacy checks containerd 2.0-2.2: flags and env, with an
// empty stdin or the runtime options Any on it.
func TestParseStartLegacy(t *testing.T) {
	e := env(map[string]string{"TTRPC_ADDRESS": "/run/ctd.sock.ttrpc"})
	p, err := parseStart(baseFlags, nil, e)
	if err != nil {
		t.Fatal(err)
	}
	if p.proto != protoLegacy || p.ttrpcAddress != "/run/ctd.sock.ttrpc" || p.grpcAddress != "/run/ctd.sock" || p.options != nil {
		t.Fatalf("unexpected params %+v", p)
	}
	in, _ := proto.Marshal(&anypb.Any{TypeUrl: "containerd.runc.v1.Options", Value: []byte{8, 1}})
	p, err = parseStart(baseFlags, in, e)
	if err != nil {
		t.Fatal(err)
	}
	if p.proto != protoLegacy || p.options.GetTypeUrl() != "containerd.runc.v1.Options" {
		t.Fatalf("options not taken from stdin: %+v", p)
	}
}

// TestParseStartMismatchedBootstrap checks that BootstrapParams for another
// instance is not taken for ours.
func TestParseStartMismatchedBootstrap(t *testing.T) {
	in, _ := proto.Marshal(&bootapi.BootstrapParams{InstanceID: "other", Namespace: "default", ContainerdTtrpcAddress: "x"})
	p, err := parseStart(baseFlags, in, env(map[string]string{"TTRPC_ADDRESS": "/t"}))
	if err == nil && p.proto == protoBootstrap {
		t.Fatal("took another instance's bootstrap params")
	}
}

// TestParseStartBadInput checks that missing flags and garbage give
// InvalidArgument errors, never a panic.
func TestParseStartBadInput(t *testing.T) {
	e := env(map[string]string{"TTRPC_ADDRESS": "/t"})
	cases := map[string]struct {
		f  Flags
		in []byte
		e  func(string) string
	}{
		"no id":        {Flags{Namespace: "n", Address: "a"}, nil, e},
		"no namespace": {Flags{ID: "c", Address: "a"}, nil, e},
		"no address":   {Flags{ID: "c", Namespace: "n"}, nil, e},
		"no ttrpc":     {baseFlags, nil, env(nil)},
		"garbage":      {baseFlags, []byte{0xff, 0xff, 0xff, 0x01, 0x02}, e},
		"huge":         {baseFlags, make([]byte, maxStdin+1), e},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseStart(c.f, c.in, c.e)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
		})
	}
}

// FuzzParseStart feeds arbitrary stdin to the start parser: no panic, and
// any accepted input yields a known protocol.
func FuzzParseStart(f *testing.F) {
	in, _ := proto.Marshal(&bootapi.BootstrapParams{InstanceID: "c1", Namespace: "default", ContainerdTtrpcAddress: "x"})
	f.Add(in)
	f.Add([]byte{})
	f.Add([]byte("{\"version\":3}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseStart(baseFlags, b, env(map[string]string{"TTRPC_ADDRESS": "/t"}))
		if err == nil && p.proto != protoBootstrap && p.proto != protoLegacy {
			t.Fatalf("accepted with protocol %d", p.proto)
		}
	})
}

// TestStartResult checks both reply encodings containerd accepts.
func TestStartResult(t *testing.T) {
	b, err := startResult(protoBootstrap, "unix:///run/s/abc")
	if err != nil {
		t.Fatal(err)
	}
	var r bootapi.BootstrapResult
	if err := proto.Unmarshal(b, &r); err != nil || r.Version != 3 || r.Protocol != "ttrpc" || r.Address != "unix:///run/s/abc" {
		t.Fatalf("bootstrap result %+v, %v", &r, err)
	}
	b, err = startResult(protoLegacy, "unix:///run/s/abc")
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Version  int    `json:"version"`
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
	}
	if err := json.Unmarshal(b, &j); err != nil || j.Version != 3 || j.Protocol != "ttrpc" || j.Address != "unix:///run/s/abc" {
		t.Fatalf("legacy result %s, %v", b, err)
	}
}

// TestParseFlags checks the flags containerd passes and a clear error for
// unknown ones.
func TestParseFlags(t *testing.T) {
	f, err := ParseFlags([]string{"-namespace", "k8s.io", "-address", "/a", "-publish-binary", "/bin/containerd", "-id", "x", "-debug", "start"}, nil)
	if err != nil || f.Namespace != "k8s.io" || f.ID != "x" || !f.Debug || f.Action != "start" {
		t.Fatalf("%+v %v", f, err)
	}
	if _, err := ParseFlags([]string{"-bogus"}, discard{}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("unknown flag: %v", err)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
