package oci

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// mountFlag says what one mount option does to the MS_* flags of mount(2).
type mountFlag struct {
	// clear is true for the options that undo another ("rw" undoes "ro").
	clear bool
	flag  uintptr
}

// mountFlags are the options that become mount(2) flags. Options that set
// one flag and options that clear it are both listed, so that the last one
// given wins, as with mount(8).
var mountFlags = map[string]mountFlag{
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"nosuid":        {false, unix.MS_NOSUID},
	"suid":          {true, unix.MS_NOSUID},
	"nodev":         {false, unix.MS_NODEV},
	"dev":           {true, unix.MS_NODEV},
	"noexec":        {false, unix.MS_NOEXEC},
	"exec":          {true, unix.MS_NOEXEC},
	"sync":          {false, unix.MS_SYNCHRONOUS},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"remount":       {false, unix.MS_REMOUNT},
	"mand":          {false, unix.MS_MANDLOCK},
	"nomand":        {true, unix.MS_MANDLOCK},
	"atime":         {true, unix.MS_NOATIME},
	"noatime":       {false, unix.MS_NOATIME},
	"diratime":      {true, unix.MS_NODIRATIME},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"relatime":      {false, unix.MS_RELATIME},
	"norelatime":    {true, unix.MS_RELATIME},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosymfollow":   {false, unix.MS_NOSYMFOLLOW},
	"symfollow":     {true, unix.MS_NOSYMFOLLOW},
	"bind":          {false, unix.MS_BIND},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
}

// propagationFlags are the options that change a mount's propagation type.
// They are applied with separate mount(2) calls after the mount is made.
var propagationFlags = map[string]uintptr{
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// idmapOptions are the options that make a bind mount idmapped: "idmap"
// maps the mount itself, "ridmap" every mount of the tree (recursive).
var idmapOptions = map[string]bool{"idmap": false, "ridmap": true}

// recursiveAttrs are the recursive mount options, as the MOUNT_ATTR_* flags
// they set (set) or clear (clr) on a mount tree with mount_setattr(2).
var recursiveAttrs = map[string]struct{ set, clr uint64 }{
	"rro":            {set: unix.MOUNT_ATTR_RDONLY},
	"rrw":            {clr: unix.MOUNT_ATTR_RDONLY},
	"rnosuid":        {set: unix.MOUNT_ATTR_NOSUID},
	"rsuid":          {clr: unix.MOUNT_ATTR_NOSUID},
	"rnodev":         {set: unix.MOUNT_ATTR_NODEV},
	"rdev":           {clr: unix.MOUNT_ATTR_NODEV},
	"rnoexec":        {set: unix.MOUNT_ATTR_NOEXEC},
	"rexec":          {clr: unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":    {set: unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":      {clr: unix.MOUNT_ATTR_NODIRATIME},
	"rrelatime":      {set: unix.MOUNT_ATTR_RELATIME, clr: unix.MOUNT_ATTR__ATIME},
	"rnorelatime":    {clr: unix.MOUNT_ATTR__ATIME},
	"rnoatime":       {set: unix.MOUNT_ATTR_NOATIME, clr: unix.MOUNT_ATTR__ATIME},
	"ratime":         {clr: unix.MOUNT_ATTR__ATIME},
	"rstrictatime":   {set: unix.MOUNT_ATTR_STRICTATIME, clr: unix.MOUNT_ATTR__ATIME},
	"rnostrictatime": {clr: unix.MOUNT_ATTR__ATIME},
	"rnosymfollow":   {set: unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":     {clr: unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// RecursiveMountOptions are the recursive options ParseMount accepts.
func RecursiveMountOptions() []string {
	out := make([]string, 0, len(recursiveAttrs))
	for o := range recursiveAttrs {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

// ParseMount translates a spec mount into the flags, propagation changes
// and data that mount(2) takes. It makes no system call.
//
// A mount of type "bind", or with a "bind" or "rbind" option, is a bind
// mount (MS_BIND, plus MS_REC for rbind). Options that are neither flags nor
// propagation types are joined with commas into Data, in order.
//
// Errors are *FieldError (errdefs.ErrInvalidArgument) naming the field
// relative to the mount ("destination", "options[2]"); Mounts prefixes them
// with "mounts[i].".
func ParseMount(m specs.Mount) (Mount, error) {
	// The runtime spec: "destination ... This value MUST be an absolute path."
	if !filepath.IsAbs(m.Destination) {
		return Mount{}, fieldErrorf("destination", "%q is not an absolute path", m.Destination)
	}
	if strings.ContainsRune(m.Destination, 0) {
		return Mount{}, fieldErrorf("destination", "contains a NUL byte")
	}
	if strings.ContainsRune(m.Source, 0) {
		return Mount{}, fieldErrorf("source", "contains a NUL byte")
	}
	out := Mount{
		Source:      m.Source,
		Destination: filepath.Clean(m.Destination),
		Type:        m.Type,
	}
	if m.Type == "bind" {
		out.Flags |= unix.MS_BIND
	}
	var data []string
	for i, o := range m.Options {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				out.Flags &^= f.flag
			} else {
				out.Flags |= f.flag
			}
			continue
		}
		if p, ok := propagationFlags[o]; ok {
			out.PropagationFlags = append(out.PropagationFlags, p)
			continue
		}
		if a, ok := recursiveAttrs[o]; ok {
			// A later option wins over an earlier one, as for flags.
			out.RecAttrSet = out.RecAttrSet&^a.clr | a.set
			out.RecAttrClr = out.RecAttrClr&^a.set | a.clr
			continue
		}
		if rec, ok := idmapOptions[o]; ok {
			out.IDMap = &IDMap{Recursive: rec}
			continue
		}
		if strings.ContainsRune(o, 0) {
			return Mount{}, fieldErrorf(fmt.Sprintf("options[%d]", i), "contains a NUL byte")
		}
		data = append(data, o)
	}
	out.Data = strings.Join(data, ",")
	if err := parseIDMap(m, &out); err != nil {
		return Mount{}, err
	}
	if out.IDMap != nil && !out.IsBind() {
		return Mount{}, fieldErrorf("options", "idmapped mounts are only supported for bind mounts")
	}
	return out, nil
}

// parseIDMap validates the mount's id mappings. Mappings without an
// "idmap" or "ridmap" option make a non-recursive idmapped mount, as with
// runc; the options without mappings leave them to NewPlan (the
// container's user namespace).
func parseIDMap(m specs.Mount, out *Mount) error {
	if len(m.UIDMappings) == 0 && len(m.GIDMappings) == 0 {
		return nil
	}
	// The runtime spec: "If specified, the options field of the mounts
	// structure MUST contain either idmap or ridmap"; runc takes mappings
	// alone as idmap, and so does box.
	if len(m.UIDMappings) == 0 {
		return fieldErrorf("uidMappings", "required with gidMappings")
	}
	if len(m.GIDMappings) == 0 {
		return fieldErrorf("gidMappings", "required with uidMappings")
	}
	if err := checkIDMap("uidMappings", m.UIDMappings); err != nil {
		return err
	}
	if err := checkIDMap("gidMappings", m.GIDMappings); err != nil {
		return err
	}
	if out.IDMap == nil {
		out.IDMap = &IDMap{}
	}
	out.IDMap.UIDMappings, out.IDMap.GIDMappings = m.UIDMappings, m.GIDMappings
	return nil
}

// Mounts parses every mount of s, in spec order. Errors name the offending
// mount: "mounts[3].destination: ...".
func Mounts(s *specs.Spec) ([]Mount, error) {
	out := make([]Mount, 0, len(s.Mounts))
	for i, m := range s.Mounts {
		pm, err := ParseMount(m)
		if err != nil {
			return nil, prefixField(fmt.Sprintf("mounts[%d]", i), err)
		}
		out = append(out, pm)
	}
	return out, nil
}

// prefixField returns err with its field prefixed by parent when err is a
// *FieldError, and err wrapped with parent otherwise.
func prefixField(parent string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: parent + "." + fe.Field, Reason: fe.Reason}
	}
	return fmt.Errorf("%s: %w", parent, err)
}
