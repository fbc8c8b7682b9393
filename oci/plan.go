// Package oci loads and validates an OCI bundle's config.json and decides,
// purely, everything the runtime will do with it: which namespaces to create
// or join, the mount plan, devices, credentials, capabilities and rlimits.
//
// Nothing in this package makes a system call other than reading files it is
// given; the runtime package carries the plan out.
package oci

import (
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Plan is what the runtime does to turn a validated spec into a container.
// It is derived from the spec by NewPlan and is never modified afterwards.
type Plan struct {
	// Spec is the validated spec the plan was made from.
	Spec *specs.Spec
	// Rootfs is the absolute path of the container's root (root.path joined
	// to the bundle when relative).
	Rootfs string
	// ReadonlyRootfs is root.readonly.
	ReadonlyRootfs bool
	// Hostname and Domainname are set in the container's new UTS namespace.
	Hostname, Domainname string

	// CloneFlags are the CLONE_NEW* flags of the namespaces the container
	// creates (namespaces listed without a path).
	CloneFlags uintptr
	// Join lists the namespaces given by path, in the order they must be
	// joined (user first when present, as the kernel requires for the others
	// to be permitted).
	Join []NamespaceJoin

	// Mounts are the spec's mounts in order, with options parsed.
	Mounts []Mount
	// Devices are the device nodes to create: the spec's plus the defaults
	// every container gets.
	Devices []Device
	// RootPropagation is the propagation applied to "/" in the container's
	// mount namespace before mounting (MS_SLAVE|MS_REC unless the spec says
	// otherwise).
	RootPropagation uintptr
	// MaskedPaths and ReadonlyPaths are linux.maskedPaths / readonlyPaths.
	MaskedPaths, ReadonlyPaths []string
	// Sysctl is linux.sysctl.
	Sysctl map[string]string

	// CgroupsPath is linux.cgroupsPath, cleaned.
	CgroupsPath string
	// Resources is linux.resources (may be nil).
	Resources *specs.LinuxResources

	// NoPivotRoot moves the root onto "/" and chroots into it instead of
	// pivot_root (runtime option NoPivotRoot, for roots pivot_root refuses,
	// such as a ramdisk). It is set by the runtime, not from the spec.
	NoPivotRoot bool

	// NetDevices are linux.netDevices, sorted by host name: moved into the
	// container's network namespace by the runtime before the init stage
	// is configured.
	NetDevices []NetDevice
	// IntelRdt is linux.intelRdt (closID checked); the runtime decides
	// whether the host can honour it.
	IntelRdt *specs.LinuxIntelRdt
	// MountLabel is linux.mountLabel (an SELinux context for mounts).
	MountLabel string

	// Process is the container's init process.
	Process *ProcessPlan

	// Hooks are the spec's hooks, validated (see Hooks for where each runs).
	Hooks Hooks
}

// NamespaceJoin is a namespace the container joins by path.
type NamespaceJoin struct {
	Type specs.LinuxNamespaceType
	Path string
	// Flag is the CLONE_NEW* constant for Type, as setns(2) expects.
	Flag uintptr
	// Field names the entry in config.json ("linux.namespaces[2].path"),
	// for errors found when the runtime opens Path.
	Field string
}

// ProcessPlan is a validated process spec: the container's init process or
// an exec'd process.
type ProcessPlan struct {
	Args []string
	Env  []string
	// Cwd is absolute, inside the container.
	Cwd string
	// User is resolved against the container's /etc/passwd and /etc/group
	// by the runtime, inside the container's root.
	User specs.User
	// Caps holds the five capability sets as bit masks (bit n = capability n).
	Caps Capabilities
	// Rlimits in spec order.
	Rlimits         []Rlimit
	NoNewPrivileges bool
	// Seccomp is the container's linux.seccomp, applied to every process
	// of the container (init and execs). Nil means no filter.
	Seccomp *specs.LinuxSeccomp
	// OOMScoreAdj is written to /proc/self/oom_score_adj when set.
	OOMScoreAdj *int
	Terminal    bool

	// Scheduler is process.scheduler as sched_setattr(2) takes it; nil
	// keeps the inherited policy.
	Scheduler *unix.SchedAttr
	// IOPriority is process.ioPriority as ioprio_set(2) takes it
	// (class << 13 | level); nil keeps the inherited one.
	IOPriority *int
	// ExecCPUAffinity is process.execCPUAffinity. The spec: "This setting
	// is not applicable to the container's init process"; the runtime
	// applies it to exec'd processes only.
	ExecCPUAffinity *CPUAffinity
	// ApparmorProfile and SelinuxLabel are process.apparmorProfile and
	// process.selinuxLabel, applied on execve.
	ApparmorProfile, SelinuxLabel string
	// Personality and MemoryPolicy are the container's linux.personality
	// and linux.memoryPolicy: like Seccomp, every process of the container
	// gets them (nil: none).
	Personality  *Personality
	MemoryPolicy *MemoryPolicy
}

// Capabilities are capability sets as bit masks.
type Capabilities struct {
	Bounding, Effective, Inheritable, Permitted, Ambient uint64
}

// Rlimit is one resource limit.
type Rlimit struct {
	// Resource is the RLIMIT_* number.
	Resource   int
	Soft, Hard uint64
}

// Mount is one parsed spec mount.
type Mount struct {
	Source, Destination, Type string
	// Flags are the MS_* flags passed to mount(2) (without propagation flags).
	Flags uintptr
	// PropagationFlags are applied one by one after the mount (MS_SHARED,
	// MS_PRIVATE, MS_SLAVE, MS_UNBINDABLE, each possibly with MS_REC).
	PropagationFlags []uintptr
	// Data is the filesystem-specific option string.
	Data string
	// RecAttrSet and RecAttrClr are MOUNT_ATTR_* flags applied with
	// mount_setattr(2) to the mount and every mount below it (the "rro",
	// "rnosuid", ... options).
	RecAttrSet, RecAttrClr uint64
	// IDMap makes the (bind) mount idmapped; nil for a plain mount.
	IDMap *IDMap
	// Detached is set by the runtime, not from the spec: a prepared
	// detached mount (an idmapped clone of Source) to move onto
	// Destination instead of mounting Source.
	Detached *os.File
}

// IDMap is an idmapped mount: the mount's uidMappings and gidMappings (or
// the "idmap"/"ridmap" options) as the user namespace mount_setattr(2)
// takes with MOUNT_ATTR_IDMAP.
type IDMap struct {
	// UIDMappings and GIDMappings are the mapping's lines, containerID as
	// the id inside the mapping's user namespace and hostID outside, as
	// for a user namespace. NewPlan fills them from linux.uidMappings and
	// gidMappings for an option without mappings in a new user namespace.
	UIDMappings, GIDMappings []specs.LinuxIDMapping
	// ContainerUserNS: the mapping is the container's joined user
	// namespace itself (an option without mappings, user namespace given
	// by path); the mappings are empty.
	ContainerUserNS bool
	// Recursive ("ridmap") maps every mount of the tree, not just the top.
	Recursive bool
}

// IsBind reports whether the mount is a bind mount.
func (m Mount) IsBind() bool { return m.Flags&msBind != 0 }

// Device is a device node to create inside the container's /dev.
type Device struct {
	// Path is absolute inside the container.
	Path string
	// Type is 'c', 'b', 'u' or 'p'.
	Type         rune
	Major, Minor int64
	FileMode     os.FileMode
	UID, GID     uint32
}

const msBind = 0x1000 // unix.MS_BIND; kept here so the type needs no x/sys import
