package shim

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/api/types"
	_ "github.com/containerd/containerd/v2/core/runtime" // registers typeurl names for features.Features
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/shim/launch"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// info is the -info action: it prints a RuntimeInfo with the OCI features
// box implements, which containerd uses to decide what it may ask for.
func info(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	feat, err := typeurl.MarshalAny(Features())
	if err != nil {
		return fmt.Errorf("marshal features: %w", err)
	}
	ri := &types.RuntimeInfo{
		Name: launch.Name,
		Version: &types.RuntimeVersion{
			Version: launch.Version,
		},
		Features: &anypb.Any{TypeUrl: feat.GetTypeUrl(), Value: feat.GetValue()},
	}
	b, err := proto.Marshal(ri)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// Features is what box implements, in the OCI features format. It lists
// only what Create accepts today.
func Features() *features.Features {
	t, f := true, false
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		// The recursive options ("rro", ...) are applied with mount_setattr.
		MountOptions: append([]string{
			"async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
			"mand", "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime",
			"nostrictatime", "nosuid", "nosymfollow", "private", "rbind", "relatime", "remount", "ro",
			"rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "slave",
			"strictatime", "suid", "symfollow", "sync", "unbindable",
			// Idmapped bind mounts (runtime/idmap.go).
			"idmap", "ridmap",
		}, oci.RecursiveMountOptions()...),
		Linux: &features.Linux{
			// Each can be created or joined by path (runtime/namespaces.go).
			Namespaces: []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
			// Mounts' uidMappings/gidMappings and idmap/ridmap: Create
			// makes them with mount_setattr(MOUNT_ATTR_IDMAP) (whether a
			// filesystem takes them is the kernel's to say, at Create).
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &t}},
			Cgroup:          &features.Cgroup{V1: &t, V2: &t},
			// Every name Create accepts; any other is refused.
			Capabilities: oci.CapabilityNames(),
			// Labels are written when the host runs the LSM; Create
			// refuses them, naming the field, where it does not.
			Apparmor: &features.Apparmor{Enabled: &t},
			Selinux:  &features.Selinux{Enabled: &t},
			// Refused by Create: box makes no resctrl groups yet.
			IntelRdt:     &features.IntelRdt{Enabled: &f},
			MemoryPolicy: &features.MemoryPolicy{Modes: oci.MemoryPolicyModes(), Flags: oci.MemoryPolicyFlags()},
			NetDevices:   &features.NetDevices{Enabled: &t},
			Seccomp: &features.Seccomp{
				Enabled: &t,
				// NOTIFY's listener goes to linux.seccomp.listenerPath
				// (runtime/seccompnotify.go).
				Actions: []string{
					"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
					"SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP",
				},
				Operators: []string{
					"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
					"SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE",
				},
				Archs:          []string{"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"},
				KnownFlags:     []string{"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"},
				SupportedFlags: []string{"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"}, // the last: NOTIFY rules, Linux 5.19+
			},
		},
	}
}
