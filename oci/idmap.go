package oci

import (
	"fmt"
	"math"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxIDMapLines is the kernel's limit on lines in a uid_map or gid_map
// (UID_GID_MAP_MAX_EXTENTS, Linux >= 4.15).
const maxIDMapLines = 340

// checkIDMap validates one list of id mappings (of a user namespace or of
// an idmapped mount) the way the kernel's map_write does, so a bad list is
// refused with the field named instead of an EINVAL from writing
// /proc/<pid>/uid_map: every range is non-empty and ends below 2^32-1 (the
// invalid id -1), and no two ranges overlap on either side.
func checkIDMap(field string, maps []specs.LinuxIDMapping) error {
	if len(maps) > maxIDMapLines {
		return fieldErrorf(field, "%d mappings exceed the kernel's limit of %d", len(maps), maxIDMapLines)
	}
	for i, m := range maps {
		f := fmt.Sprintf("%s[%d]", field, i)
		if m.Size == 0 {
			return fieldErrorf(f+".size", "must be greater than 0")
		}
		if uint64(m.ContainerID)+uint64(m.Size) > math.MaxUint32 {
			return fieldErrorf(f, "containerID %d + size %d overflows the 32-bit id space", m.ContainerID, m.Size)
		}
		if uint64(m.HostID)+uint64(m.Size) > math.MaxUint32 {
			return fieldErrorf(f, "hostID %d + size %d overflows the 32-bit id space", m.HostID, m.Size)
		}
		for j, o := range maps[:i] {
			if overlap(m.ContainerID, o.ContainerID, m.Size, o.Size) {
				return fieldErrorf(f, "containerID range overlaps %s[%d]", field, j)
			}
			if overlap(m.HostID, o.HostID, m.Size, o.Size) {
				return fieldErrorf(f, "hostID range overlaps %s[%d]", field, j)
			}
		}
	}
	return nil
}

// overlap reports whether [a, a+na) and [b, b+nb) intersect.
func overlap(a, b, na, nb uint32) bool {
	return uint64(a) < uint64(b)+uint64(nb) && uint64(b) < uint64(a)+uint64(na)
}

// timeClocks are the clocks linux.timeOffsets may shift (time_namespaces(7)).
var timeClocks = map[string]bool{"monotonic": true, "boottime": true}

// checkTimeOffsets validates linux.timeOffsets.
func checkTimeOffsets(offsets map[string]specs.LinuxTimeOffset) error {
	for clock, o := range offsets {
		field := "linux.timeOffsets." + clock
		if !timeClocks[clock] {
			return fieldErrorf(field, "unknown clock %q (monotonic or boottime)", clock)
		}
		if o.Nanosecs >= 1e9 {
			return fieldErrorf(field+".nanosecs", "%d is not below 1e9", o.Nanosecs)
		}
	}
	return nil
}

// planIDMaps gives the idmapped mounts that name no mappings of their own
// the container's: runc's meaning of a bare "idmap" or "ridmap". That needs
// the container to have a user namespace.
func planIDMaps(ms []Mount, s *specs.Spec, ns namespaces) error {
	for i := range ms {
		im := ms[i].IDMap
		if im == nil || len(im.UIDMappings) > 0 {
			continue
		}
		switch ns.mode[specs.UserNamespace] {
		case nsCreate:
			im.UIDMappings, im.GIDMappings = s.Linux.UIDMappings, s.Linux.GIDMappings
		case nsJoin:
			im.ContainerUserNS = true
		default:
			return fieldErrorf(fmt.Sprintf("mounts[%d].options", i), "idmap without uidMappings and gidMappings uses the container's user namespace, and there is none")
		}
	}
	return nil
}
