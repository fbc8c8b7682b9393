package oci

import (
	"fmt"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// capabilityBits maps every Linux capability name, as the spec writes it, to
// its number (capabilities(7), include/uapi/linux/capability.h).
var capabilityBits = map[string]uint{
	"CAP_CHOWN":              0,
	"CAP_DAC_OVERRIDE":       1,
	"CAP_DAC_READ_SEARCH":    2,
	"CAP_FOWNER":             3,
	"CAP_FSETID":             4,
	"CAP_KILL":               5,
	"CAP_SETGID":             6,
	"CAP_SETUID":             7,
	"CAP_SETPCAP":            8,
	"CAP_LINUX_IMMUTABLE":    9,
	"CAP_NET_BIND_SERVICE":   10,
	"CAP_NET_BROADCAST":      11,
	"CAP_NET_ADMIN":          12,
	"CAP_NET_RAW":            13,
	"CAP_IPC_LOCK":           14,
	"CAP_IPC_OWNER":          15,
	"CAP_SYS_MODULE":         16,
	"CAP_SYS_RAWIO":          17,
	"CAP_SYS_CHROOT":         18,
	"CAP_SYS_PTRACE":         19,
	"CAP_SYS_PACCT":          20,
	"CAP_SYS_ADMIN":          21,
	"CAP_SYS_BOOT":           22,
	"CAP_SYS_NICE":           23,
	"CAP_SYS_RESOURCE":       24,
	"CAP_SYS_TIME":           25,
	"CAP_SYS_TTY_CONFIG":     26,
	"CAP_MKNOD":              27,
	"CAP_LEASE":              28,
	"CAP_AUDIT_WRITE":        29,
	"CAP_AUDIT_CONTROL":      30,
	"CAP_SETFCAP":            31,
	"CAP_MAC_OVERRIDE":       32,
	"CAP_MAC_ADMIN":          33,
	"CAP_SYSLOG":             34,
	"CAP_WAKE_ALARM":         35,
	"CAP_BLOCK_SUSPEND":      36,
	"CAP_AUDIT_READ":         37,
	"CAP_PERFMON":            38,
	"CAP_BPF":                39,
	"CAP_CHECKPOINT_RESTORE": 40,
}

// LastCap is the highest capability number this package knows.
const LastCap = 40

// CapabilityBit returns the number of the capability called name
// ("CAP_SYS_ADMIN"), and false for a name it does not know.
func CapabilityBit(name string) (uint, bool) {
	b, ok := capabilityBits[name]
	return b, ok
}

// rlimitResources maps the spec's rlimit types to RLIMIT_* numbers.
var rlimitResources = map[string]int{
	"RLIMIT_CPU":        unix.RLIMIT_CPU,
	"RLIMIT_FSIZE":      unix.RLIMIT_FSIZE,
	"RLIMIT_DATA":       unix.RLIMIT_DATA,
	"RLIMIT_STACK":      unix.RLIMIT_STACK,
	"RLIMIT_CORE":       unix.RLIMIT_CORE,
	"RLIMIT_RSS":        unix.RLIMIT_RSS,
	"RLIMIT_NPROC":      unix.RLIMIT_NPROC,
	"RLIMIT_NOFILE":     unix.RLIMIT_NOFILE,
	"RLIMIT_MEMLOCK":    unix.RLIMIT_MEMLOCK,
	"RLIMIT_AS":         unix.RLIMIT_AS,
	"RLIMIT_LOCKS":      unix.RLIMIT_LOCKS,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE":       unix.RLIMIT_NICE,
	"RLIMIT_RTPRIO":     unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME":     unix.RLIMIT_RTTIME,
}

// NewProcessPlan validates a process spec (the container's init process or
// an exec'd one) and translates it. Errors are *FieldError values (so they
// wrap errdefs.ErrInvalidArgument) naming the field under "process".
//
// A nil process.capabilities means no capabilities at all: the spec gives no
// default, and this is the safe one.
func NewProcessPlan(p *specs.Process) (*ProcessPlan, error) {
	if p == nil {
		return nil, fieldErrorf("process", "missing")
	}
	if err := checkArgs(p.Args); err != nil {
		return nil, err
	}
	if err := checkEnv(p.Env); err != nil {
		return nil, err
	}
	if p.Cwd == "" || !filepath.IsAbs(p.Cwd) {
		return nil, fieldErrorf("process.cwd", "%q is not an absolute path", p.Cwd)
	}
	caps, err := capabilities(p.Capabilities)
	if err != nil {
		return nil, err
	}
	rlimits, err := rlimits(p.Rlimits)
	if err != nil {
		return nil, err
	}
	if err := checkUser(p.User); err != nil {
		return nil, err
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return nil, fieldErrorf("process.oomScoreAdj", "%d is outside -1000..1000", *p.OOMScoreAdj)
	}
	var attrs ProcessPlan
	if err := processAttrs(p, &attrs); err != nil {
		return nil, err
	}
	pp := &ProcessPlan{
		Args:            append([]string(nil), p.Args...),
		Env:             append([]string(nil), p.Env...),
		Cwd:             filepath.Clean(p.Cwd),
		User:            p.User,
		Caps:            caps,
		Rlimits:         rlimits,
		NoNewPrivileges: p.NoNewPrivileges,
		Terminal:        p.Terminal,
		Scheduler:       attrs.Scheduler,
		IOPriority:      attrs.IOPriority,
		ExecCPUAffinity: attrs.ExecCPUAffinity,
		ApparmorProfile: p.ApparmorProfile,
		SelinuxLabel:    p.SelinuxLabel,
	}
	pp.User.AdditionalGids = append([]uint32(nil), p.User.AdditionalGids...)
	if p.OOMScoreAdj != nil {
		adj := *p.OOMScoreAdj
		pp.OOMScoreAdj = &adj
	}
	return pp, nil
}

// invalidID is (uid_t)-1: setresuid(2) and friends read it as "leave
// unchanged", so a process asking for it would silently keep root.
const invalidID = ^uint32(0)

// checkUser refuses ids the kernel cannot take as credentials.
func checkUser(u specs.User) error {
	if u.UID == invalidID {
		return fieldErrorf("process.user.uid", "%d is not a valid uid", u.UID)
	}
	if u.GID == invalidID {
		return fieldErrorf("process.user.gid", "%d is not a valid gid", u.GID)
	}
	for i, g := range u.AdditionalGids {
		if g == invalidID {
			return fieldErrorf(fmt.Sprintf("process.user.additionalGids[%d]", i), "%d is not a valid gid", g)
		}
	}
	return nil
}

// checkArgs: execve(2) needs a program, and takes C strings.
func checkArgs(args []string) error {
	if len(args) == 0 {
		return fieldErrorf("process.args", "must not be empty")
	}
	if args[0] == "" {
		return fieldErrorf("process.args[0]", "must not be empty")
	}
	for i, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			return fieldErrorf(fmt.Sprintf("process.args[%d]", i), "contains a NUL byte")
		}
	}
	return nil
}

// checkEnv: every entry is NAME=value with a non-empty NAME.
func checkEnv(env []string) error {
	for i, e := range env {
		field := fmt.Sprintf("process.env[%d]", i)
		if strings.IndexByte(e, '=') <= 0 {
			return fieldErrorf(field, "%q is not of the form NAME=value", e)
		}
		if strings.IndexByte(e, 0) >= 0 {
			return fieldErrorf(field, "contains a NUL byte")
		}
	}
	return nil
}

// capabilities translates the five capability sets to bit masks and checks
// that the kernel can establish them together:
//
//   - capset(2): "the new effective set must be a subset of the new
//     permitted set", and the new inheritable set must be a subset of the
//     bounding set (we drop the bounding set before capset).
//   - capabilities(7): "no capability can ever be ambient if it is not both
//     permitted and inheritable."
func capabilities(c *specs.LinuxCapabilities) (Capabilities, error) {
	if c == nil {
		return Capabilities{}, nil
	}
	var caps Capabilities
	sets := []struct {
		name  string
		names []string
		mask  *uint64
	}{
		{"bounding", c.Bounding, &caps.Bounding},
		{"effective", c.Effective, &caps.Effective},
		{"inheritable", c.Inheritable, &caps.Inheritable},
		{"permitted", c.Permitted, &caps.Permitted},
		{"ambient", c.Ambient, &caps.Ambient},
	}
	for _, set := range sets {
		m, err := capabilityMask("process.capabilities."+set.name, set.names)
		if err != nil {
			return Capabilities{}, err
		}
		*set.mask = m
	}
	if err := capSubset(c.Effective, "effective", caps.Permitted, "permitted"); err != nil {
		return Capabilities{}, err
	}
	if err := capSubset(c.Inheritable, "inheritable", caps.Bounding, "bounding"); err != nil {
		return Capabilities{}, err
	}
	if err := capSubset(c.Ambient, "ambient", caps.Permitted&caps.Inheritable, "both permitted and inheritable"); err != nil {
		return Capabilities{}, err
	}
	return caps, nil
}

// capabilityMask translates one set. Duplicates are harmless and allowed.
func capabilityMask(field string, names []string) (uint64, error) {
	var m uint64
	for i, name := range names {
		b, ok := capabilityBits[name]
		if !ok {
			return 0, fieldErrorf(fmt.Sprintf("%s[%d]", field, i), "unknown capability %q", name)
		}
		m |= 1 << b
	}
	return m, nil
}

// capSubset reports the first of names (already known to be valid) that is
// not in super.
func capSubset(names []string, set string, super uint64, superName string) error {
	for i, name := range names {
		if super&(1<<capabilityBits[name]) == 0 {
			return fieldErrorf(fmt.Sprintf("process.capabilities.%s[%d]", set, i),
				"%s is not in the %s set", name, superName)
		}
	}
	return nil
}

// rlimits translates process.rlimits. The spec: "If rlimits contains
// duplicated entries with same type, the runtime MUST generate an error."
func rlimits(list []specs.POSIXRlimit) ([]Rlimit, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := make([]Rlimit, 0, len(list))
	seen := make(map[int]bool, len(list))
	for i, rl := range list {
		field := fmt.Sprintf("process.rlimits[%d]", i)
		res, ok := rlimitResources[rl.Type]
		if !ok {
			return nil, fieldErrorf(field+".type", "unknown rlimit %q", rl.Type)
		}
		if seen[res] {
			return nil, fieldErrorf(field+".type", "duplicate rlimit %q", rl.Type)
		}
		seen[res] = true
		if rl.Soft > rl.Hard {
			return nil, fieldErrorf(field, "soft limit %d exceeds hard limit %d", rl.Soft, rl.Hard)
		}
		out = append(out, Rlimit{Resource: res, Soft: rl.Soft, Hard: rl.Hard})
	}
	return out, nil
}
