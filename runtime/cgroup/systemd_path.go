package cgroup

import (
	"fmt"
	"path"
	"strings"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// DefaultSlice is the slice a systemd cgroupsPath with an empty slice part is placed in, as
// runc does.
const DefaultSlice = "system.slice"

// maxUnitName is the longest unit name systemd accepts (UNIT_NAME_MAX - 1).
const maxUnitName = 255

// systemdPath is a parsed systemd driver cgroupsPath, "slice:prefix:name".
type systemdPath struct {
	// Slice is the slice the scope is started in (DefaultSlice when the path's slice part is
	// empty; "-.slice" is the root slice).
	Slice string
	// Unit is the transient scope, "<prefix>-<name>.scope" ("<name>.scope" without a prefix).
	Unit string
	// Dir is the scope's cgroup relative to the cgroup2 root: the slice's nesting spelled out
	// ("a-b.slice" lives in /a.slice/a-b.slice), then the unit.
	Dir string
}

// parseSystemdPath parses the systemd cgroup driver's linux.cgroupsPath, "slice:prefix:name"
// (runc's format). It is strict, because every part ends up in a unit name systemd parses
// and a directory box writes to: exactly three parts; no "/" anywhere; a slice that is empty
// or ends in ".slice" with a well-formed dash-separated stem; prefix and name made of
// [A-Za-z0-9_.-] only; a non-empty name that does not end in ".slice" (a container's cgroup
// is a scope, which is what holds processes; runc would make a slice unit of it); and a unit
// name of at most 255 bytes. Errors are *oci.FieldError for linux.cgroupsPath.
func parseSystemdPath(p string) (systemdPath, error) {
	bad := func(format string, args ...any) (systemdPath, error) {
		return systemdPath{}, &oci.FieldError{Field: "linux.cgroupsPath", Reason: fmt.Sprintf(format, args...)}
	}
	parts := strings.Split(p, ":")
	if len(parts) != 3 {
		return bad("%q is not \"slice:prefix:name\", the form the systemd cgroup driver (runtime option SystemdCgroup) needs", p)
	}
	if strings.Contains(p, "/") {
		return bad("%q: the parts of a systemd cgroupsPath are unit names and may not contain \"/\"", p)
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if slice == "" {
		slice = DefaultSlice
	}
	dir, err := sliceDir(slice)
	if err != "" {
		return bad("%q: slice %q %s", p, slice, err)
	}
	if !unitChars(prefix) {
		return bad("%q: prefix %q may contain only letters, digits, \"_\", \".\" and \"-\"", p, prefix)
	}
	switch {
	case name == "":
		return bad("%q: the name part is empty", p)
	case !unitChars(name):
		return bad("%q: name %q may contain only letters, digits, \"_\", \".\" and \"-\"", p, name)
	case strings.HasSuffix(name, ".slice"):
		return bad("%q: name %q ends in \".slice\"; a container's cgroup is a scope (a slice cannot hold processes)", p, name)
	}
	unit := name + ".scope"
	if prefix != "" {
		unit = prefix + "-" + unit
	}
	if len(unit) > maxUnitName {
		return bad("%q: unit name %q is longer than %d bytes", p, unit, maxUnitName)
	}
	return systemdPath{Slice: slice, Unit: unit, Dir: path.Join(dir, unit)}, nil
}

// sliceDir is the cgroup directory of a slice unit relative to the cgroup2 root: systemd nests
// "a-b-c.slice" as /a.slice/a-b.slice/a-b-c.slice, and "-.slice" is the root. A malformed slice
// name gives "" and the reason.
func sliceDir(slice string) (string, string) {
	if slice == "-.slice" {
		return "/", ""
	}
	stem, ok := strings.CutSuffix(slice, ".slice")
	switch {
	case !ok:
		return "", "does not end in \".slice\""
	case stem == "":
		return "", "has an empty name"
	case !unitChars(stem):
		return "", "may contain only letters, digits, \"_\", \".\" and \"-\""
	case strings.HasPrefix(stem, "-") || strings.HasSuffix(stem, "-") || strings.Contains(stem, "--"):
		return "", "has an empty component between dashes (a dash nests slices: a-b.slice is in a.slice)"
	case len(slice) > maxUnitName:
		return "", fmt.Sprintf("is longer than %d bytes", maxUnitName)
	}
	dir := "/"
	for i, c := range stem {
		if c == '-' {
			dir = path.Join(dir, stem[:i]+".slice")
		}
	}
	return path.Join(dir, slice), ""
}

// unitChars reports whether s uses only characters box allows in the parts of a unit name:
// a strict subset of what systemd allows (no "\" escapes, no "@" instance marker, no ":").
func unitChars(s string) bool {
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}
