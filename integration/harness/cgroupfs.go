package harness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Unified reports whether /sys/fs/cgroup is a pure cgroup2 mount (the cgroup v2 VM) rather
// than the v1 hybrid layout of the test hosts.
func Unified() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// CgroupVersion is "v2" on a pure cgroup2 host, else "v1".
func CgroupVersion() string {
	if Unified() {
		return "v2"
	}
	return "v1"
}

// Cgroup reads the interface files of one cgroup (a path such as "/box-test-ab12/c1") from the
// host side, on v1 (one directory per controller) and v2 alike. Its methods return an error
// naming the file when it cannot be read or parsed; they never write.
type Cgroup struct {
	Path string
	v2   bool
}

// OpenCgroup returns the Cgroup for path on this host's hierarchy.
func OpenCgroup(path string) Cgroup { return Cgroup{Path: path, v2: Unified()} }

// File is the host path of an interface file: /sys/fs/cgroup/<v1controller>/<path>/<v1name>
// on v1, /sys/fs/cgroup/<path>/<v2name> on v2.
func (g Cgroup) File(v1controller, v1name, v2name string) string {
	if g.v2 {
		return filepath.Join("/sys/fs/cgroup", g.Path, v2name)
	}
	return filepath.Join("/sys/fs/cgroup", v1controller, g.Path, v1name)
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// readKey returns the value of "key value" in a flat-keyed file (memory.stat, cpu.stat,
// pids.events, memory.events, memory.oom_control, cgroup.stat).
func readKey(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %s: %w", path, key, err)
			}
			return n, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s has no key %q", path, key)
}

// MemoryUsage is the memory charged to the cgroup now (memory.usage_in_bytes / memory.current).
func (g Cgroup) MemoryUsage() (int64, error) {
	return readInt(g.File("memory", "memory.usage_in_bytes", "memory.current"))
}

// MemoryPeak is the highest usage the cgroup has had (memory.max_usage_in_bytes /
// memory.peak).
func (g Cgroup) MemoryPeak() (int64, error) {
	return readInt(g.File("memory", "memory.max_usage_in_bytes", "memory.peak"))
}

// MemoryLimit is the hard limit (memory.limit_in_bytes / memory.max; -1 for max).
func (g Cgroup) MemoryLimit() (int64, error) {
	return readInt(g.File("memory", "memory.limit_in_bytes", "memory.max"))
}

// KernelMemory is the kernel memory (slab objects: dentries, inodes, ...) charged to the
// cgroup: memory.kmem.usage_in_bytes on v1, memory.stat "slab" on v2.
func (g Cgroup) KernelMemory() (int64, error) {
	if g.v2 {
		return readKey(g.File("", "", "memory.stat"), "slab")
	}
	return readInt(g.File("memory", "memory.kmem.usage_in_bytes", ""))
}

// OOMKills is the number of processes of the cgroup the OOM killer killed
// (memory.oom_control oom_kill / memory.events oom_kill).
func (g Cgroup) OOMKills() (int64, error) {
	return readKey(g.File("memory", "memory.oom_control", "memory.events"), "oom_kill")
}

// CPUUsage is the CPU time the cgroup's processes used (cpuacct.usage / cpu.stat usage_usec).
func (g Cgroup) CPUUsage() (time.Duration, error) {
	if g.v2 {
		us, err := readKey(g.File("", "", "cpu.stat"), "usage_usec")
		return time.Duration(us) * time.Microsecond, err
	}
	ns, err := readInt(g.File("cpuacct", "cpuacct.usage", ""))
	return time.Duration(ns), err
}

// CPUWeight is the cgroup's CPU weight: cpu.shares on v1, cpu.weight on v2.
func (g Cgroup) CPUWeight() (int64, error) {
	return readInt(g.File("cpu", "cpu.shares", "cpu.weight"))
}

// PidsCurrent is the number of tasks in the cgroup (pids.current).
func (g Cgroup) PidsCurrent() (int64, error) {
	return readInt(g.File("pids", "pids.current", "pids.current"))
}

// PidsLimitHits is how often a fork or clone in the cgroup failed because of pids.max (the
// "max" counter of pids.events): each such failure is an EAGAIN.
func (g Cgroup) PidsLimitHits() (int64, error) {
	return readKey(g.File("pids", "pids.events", "pids.events"), "max")
}

// DyingDescendants is cgroup.stat nr_dying_descendants (v2 only): cgroups below this one
// that were removed but are still held by the kernel.
func (g Cgroup) DyingDescendants() (int64, error) {
	if !g.v2 {
		return 0, fmt.Errorf("nr_dying_descendants: cgroup v2 only")
	}
	return readKey(g.File("", "", "cgroup.stat"), "nr_dying_descendants")
}

// Children lists the cgroups directly below this one (in the memory hierarchy on v1).
func (g Cgroup) Children() ([]string, error) {
	ents, err := os.ReadDir(filepath.Dir(g.File("memory", "x", "x")))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// MemAvailable is the host's MemAvailable from /proc/meminfo, in bytes.
func MemAvailable() (int64, error) { return memInfoField("MemAvailable") }

func memInfoField(name string) (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == name+":" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo %s: %w", name, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/meminfo has no %s", name)
}
