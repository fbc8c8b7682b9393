package oci

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Identity is the credentials a container process runs with.
type Identity struct {
	UID, GID uint32
	// AdditionalGids are the supplementary groups, in order, without
	// duplicates.
	AdditionalGids []uint32
	// Home is the user's home directory from passwd, or "/".
	Home string
}

// ResolveUser completes the spec's numeric user with what the container's
// /etc/passwd and /etc/group say about it:
//
//   - Home is the home directory of the first passwd entry for u.UID, or
//     "/" when there is none (a uid without a passwd entry is normal:
//     Kubernetes' runAsUser).
//   - AdditionalGids are the gids of the groups whose member list names that
//     entry's user, in file order, then u.AdditionalGids, without duplicates.
//     The primary gid is not removed when it appears there.
//
// passwd and group are the files' contents, nil when a file is absent. As
// libc does, lines that cannot be parsed (too few fields, a non-numeric id,
// NIS "+"/"-" entries, comments) are skipped. Only a read error, or a line
// over 1 MiB, is an error.
//
// moby/sys/user's parsers are not used because they read a malformed id as
// 0, which would make a broken line look like root's entry.
func ResolveUser(u specs.User, passwd, group io.Reader) (Identity, error) {
	id := Identity{UID: u.UID, GID: u.GID, Home: "/"}
	name := ""
	if passwd != nil {
		err := scanEntries(passwd, 7, func(f []string) bool {
			uid, ok := parseID(f[2])
			if !ok || uid != u.UID {
				return true
			}
			name = f[0]
			if f[5] != "" {
				id.Home = f[5]
			}
			return false // first match wins
		})
		if err != nil {
			return Identity{}, fmt.Errorf("read passwd: %w", err)
		}
	}
	if name != "" && group != nil {
		err := scanEntries(group, 4, func(f []string) bool {
			gid, ok := parseID(f[2])
			if ok && slices.Contains(strings.Split(f[3], ","), name) {
				id.AdditionalGids = appendUnique(id.AdditionalGids, gid)
			}
			return true
		})
		if err != nil {
			return Identity{}, fmt.Errorf("read group: %w", err)
		}
	}
	for _, gid := range u.AdditionalGids {
		id.AdditionalGids = appendUnique(id.AdditionalGids, gid)
	}
	return id, nil
}

// maxEntryLine bounds one passwd or group line (a group's member list can
// be long).
const maxEntryLine = 1 << 20

// scanEntries calls fn with the colon-separated fields of each well-formed
// line of r (at least nfields fields, the first one non-empty), until fn
// returns false or r ends.
func scanEntries(r io.Reader, nfields int, fn func(fields []string) bool) error {
	s := bufio.NewScanner(r)
	s.Buffer(nil, maxEntryLine)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < nfields || f[0] == "" {
			continue
		}
		if !fn(f) {
			return nil
		}
	}
	return s.Err()
}

// parseID parses a decimal uid or gid. (uid_t)-1 is not an id.
func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

func appendUnique(s []uint32, v uint32) []uint32 {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}
