package launch

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// protocol is how containerd started the shim.
type protocol uint8

const (
	_ protocol = iota
	// protoBootstrap is containerd >= 2.3: a protobuf BootstrapParams on
	// stdin, a protobuf BootstrapResult on stdout.
	protoBootstrap
	// protoLegacy is containerd 2.0-2.2: flags and environment, the runtime
	// options Any (or nothing) on stdin, JSON on stdout.
	protoLegacy
)

// startParams is what the start action needs, whichever protocol gave it.
type startParams struct {
	proto        protocol
	id           string
	namespace    string
	grpcAddress  string
	ttrpcAddress string
	// socketDir is where the daemon's socket goes; empty means the default.
	socketDir string
	debug     bool
	// options are the runtime options containerd passed (may be nil).
	options *anypb.Any
}

// maxStdin bounds what start reads from containerd.
const maxStdin = 10 << 20

// parseStart decides which protocol containerd used and merges what it said.
// flags are the already parsed command-line values; env is how to read the
// environment. Garbage input is an InvalidArgument error, never a panic.
func parseStart(f Flags, stdin []byte, getenv func(string) string) (*startParams, error) {
	if f.ID == "" {
		return nil, fmt.Errorf("-id is required: %w", errdefs.ErrInvalidArgument)
	}
	if f.Namespace == "" {
		return nil, fmt.Errorf("-namespace is required: %w", errdefs.ErrInvalidArgument)
	}
	if len(stdin) > maxStdin {
		return nil, fmt.Errorf("start input of %d bytes exceeds %d: %w", len(stdin), maxStdin, errdefs.ErrInvalidArgument)
	}
	p := &startParams{
		id:           f.ID,
		namespace:    f.Namespace,
		grpcAddress:  f.Address,
		ttrpcAddress: getenv("TTRPC_ADDRESS"),
		debug:        f.Debug,
	}
	var bp bootapi.BootstrapParams
	if len(stdin) > 0 && proto.Unmarshal(stdin, &bp) == nil && bp.GetInstanceID() == f.ID && bp.GetNamespace() == f.Namespace {
		p.proto = protoBootstrap
		if a := bp.GetContainerdGrpcAddress(); a != "" {
			p.grpcAddress = a
		}
		if a := bp.GetContainerdTtrpcAddress(); a != "" {
			p.ttrpcAddress = a
		}
		p.socketDir = bp.GetSocketDir()
		p.debug = p.debug || bp.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG
		for _, ext := range bp.GetExtensions() {
			if v := ext.GetValue(); v != nil && p.options == nil {
				p.options = v
			}
		}
	} else {
		p.proto = protoLegacy
		if len(stdin) > 0 {
			var opts anypb.Any
			if err := proto.Unmarshal(stdin, &opts); err != nil {
				return nil, fmt.Errorf("start input is neither BootstrapParams for -id %q nor runtime options: %v: %w", f.ID, err, errdefs.ErrInvalidArgument)
			}
			p.options = &opts
		}
	}
	if p.grpcAddress == "" {
		return nil, fmt.Errorf("containerd address missing (-address): %w", errdefs.ErrInvalidArgument)
	}
	if p.ttrpcAddress == "" {
		return nil, fmt.Errorf("containerd ttrpc address missing (TTRPC_ADDRESS or BootstrapParams): %w", errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// startResult encodes the reply to containerd in the protocol it spoke.
func startResult(p protocol, address string) ([]byte, error) {
	if p == protoBootstrap {
		return proto.Marshal(&bootapi.BootstrapResult{Version: 3, Address: address, Protocol: "ttrpc"})
	}
	return json.Marshal(struct {
		Version  int    `json:"version"`
		Address  string `json:"address"`
		Protocol string `json:"protocol"`
	}{3, address, "ttrpc"})
}

func readStdin() ([]byte, error) {
	st, err := os.Stdin.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice != 0 {
		return nil, nil
	}
	return io.ReadAll(io.LimitReader(os.Stdin, maxStdin+1))
}
