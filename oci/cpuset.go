package oci

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxCPU is the highest CPU or NUMA node number a list may name. The
// kernel's own limit (CONFIG_NR_CPUS) is at most 8192; runc allows 65536.
// Above it a list is absurd, and its mask would be large for nothing.
const MaxCPU = 64 * 1024

// ParseCPUList parses a list in the kernel's list format ("0-3,7", the
// format of cpuset.cpus and of /sys/devices/system/cpu/online) into a
// mask. As runc does, it allows spaces around elements and empty elements
// ("0,,1"), and needs at least one member. An empty string is a nil mask
// and no error: "not set".
//
// Errors say what is wrong with s; the caller adds the field name.
func ParseCPUList(s string) (unix.CPUSetDynamic, error) {
	if s == "" {
		return nil, nil
	}
	type span struct{ lo, hi int }
	var spans []span
	top := 0
	for elem := range strings.SplitSeq(s, ",") {
		elem = strings.TrimSpace(elem)
		if elem == "" {
			continue
		}
		loStr, hiStr, isRange := strings.Cut(elem, "-")
		lo, err := cpuNumber(loStr)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", elem, err)
		}
		hi := lo
		if isRange {
			if hi, err = cpuNumber(hiStr); err != nil {
				return nil, fmt.Errorf("%q: %w", elem, err)
			}
			if lo > hi {
				return nil, fmt.Errorf("%q: range start is above its end", elem)
			}
		}
		spans = append(spans, span{lo, hi})
		top = max(top, hi)
	}
	if len(spans) == 0 {
		return nil, errors.New("no members")
	}
	set := unix.NewCPUSet(top + 1)
	for _, sp := range spans {
		for i := sp.lo; i <= sp.hi; i++ {
			set.Set(i)
		}
	}
	return set, nil
}

// cpuNumber parses one decimal CPU number: digits only (no sign, no
// spaces inside), at most MaxCPU.
func cpuNumber(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > MaxCPU {
		return 0, fmt.Errorf("%s is above the limit of %d", s, MaxCPU)
	}
	return int(n), nil
}

// FormatCPUList is the inverse of ParseCPUList: the canonical list of the
// members of set ("0-3,7"), "" for none.
func FormatCPUList(set unix.CPUSetDynamic) string {
	var b strings.Builder
	n := len(set) * bits.UintSize // a mask word is a C long
	for i := 0; i < n; i++ {
		if !set.IsSet(i) {
			continue
		}
		j := i
		for j+1 < n && set.IsSet(j+1) {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(i))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(j))
		}
		i = j
	}
	return b.String()
}
