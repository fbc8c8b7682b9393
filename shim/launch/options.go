package launch

import (
	"fmt"
	"os"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Options are the runtime options box honours. containerd passes them as
// an Any: either runc's options type (so a runtime can be switched from
// io.containerd.runc.v2 to box without touching the rest of the config), or
// CRI's generic runtimeoptions.Options whose ConfigBody/ConfigPath is the
// TOML of the runtime's options table, read with the same field names.
type Options struct {
	// ShimCgroup is a cgroup the daemon moves itself into.
	ShimCgroup string `toml:"ShimCgroup"`
	// IoUID and IoGID own the pipes box creates for a container's output.
	IoUID uint32 `toml:"IoUid"`
	IoGID uint32 `toml:"IoGid"`
	// SystemdCgroup asks for the systemd cgroup driver: linux.cgroupsPath must then be
	// "slice:prefix:name" (runtime/cgroup.CheckDriver), and the container's cgroup is the
	// transient scope <prefix>-<name>.scope in that slice (cgroup v2 hosts with systemd).
	SystemdCgroup bool `toml:"SystemdCgroup"`
	// NoPivotRoot moves the rootfs onto / and chroots instead of pivot_root.
	NoPivotRoot bool `toml:"NoPivotRoot"`
	// NoNewKeyring keeps the daemon's session keyring instead of giving the
	// container its own.
	NoNewKeyring bool `toml:"NoNewKeyring"`
}

// Type URLs of the option messages containerd sends.
const (
	runcOptionsType    = "containerd.runc.v1.Options"
	runtimeOptionsType = "runtimeoptions.v1.Options"
)

// ParseOptions decodes containerd's runtime options. A nil or empty Any
// gives the defaults; an unknown type is an InvalidArgument error.
func ParseOptions(a *anypb.Any) (Options, error) {
	var o Options
	if a == nil || (a.GetTypeUrl() == "" && len(a.GetValue()) == 0) {
		return o, nil
	}
	switch typeName(a.GetTypeUrl()) {
	case runcOptionsType:
		var ro runcoptions.Options
		if err := proto.Unmarshal(a.GetValue(), &ro); err != nil {
			return o, fmt.Errorf("runtime options %s: %v: %w", a.GetTypeUrl(), err, errdefs.ErrInvalidArgument)
		}
		// BinaryName, Root and the CRIU paths only mean something to runc.
		o = Options{
			ShimCgroup: ro.ShimCgroup, IoUID: ro.IoUid, IoGID: ro.IoGid,
			SystemdCgroup: ro.SystemdCgroup, NoPivotRoot: ro.NoPivotRoot, NoNewKeyring: ro.NoNewKeyring,
		}
	case runtimeOptionsType:
		var ro runtimeoptions.Options
		if err := proto.Unmarshal(a.GetValue(), &ro); err != nil {
			return o, fmt.Errorf("runtime options %s: %v: %w", a.GetTypeUrl(), err, errdefs.ErrInvalidArgument)
		}
		body := ro.ConfigBody
		if len(body) == 0 && ro.ConfigPath != "" {
			b, err := os.ReadFile(ro.ConfigPath)
			if err != nil {
				return o, fmt.Errorf("runtime options ConfigPath %s: %w", ro.ConfigPath, err)
			}
			body = b
		}
		if err := toml.Unmarshal(body, &o); err != nil {
			return o, fmt.Errorf("runtime options TOML: %v: %w", err, errdefs.ErrInvalidArgument)
		}
	default:
		return o, fmt.Errorf("runtime options of type %q are not box's (want %s or %s): %w",
			a.GetTypeUrl(), runcOptionsType, runtimeOptionsType, errdefs.ErrInvalidArgument)
	}
	return o, nil
}

// typeName strips a type URL's host part ("types.containerd.io/x" -> "x").
func typeName(url string) string {
	for i := len(url) - 1; i >= 0; i-- {
		if url[i] == '/' {
			return url[i+1:]
		}
	}
	return url
}
