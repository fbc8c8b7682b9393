package launch

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/atomicfile"
)

// Files the daemon keeps in a bundle so the delete action can clean up after
// a daemon that died.
const (
	StateFile = "box-state.json"
	ExitFile  = "exit.json"
)

// BundleState records what a container owns outside its bundle.
type BundleState struct {
	// Pid is the init process and StartTime its start time in clock ticks
	// since boot (/proc/<pid>/stat field 22): together they name the process
	// even if the pid is recycled.
	Pid         int    `json:"pid"`
	StartTime   uint64 `json:"startTime"`
	CgroupsPath string `json:"cgroupsPath"`
}

// ExitState is the init process's exit, written when it is known.
type ExitState struct {
	Pid      int       `json:"pid"`
	Status   int       `json:"status"`
	ExitedAt time.Time `json:"exitedAt"`
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := atomicfile.New(path, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Cancel()
		return err
	}
	return f.Close()
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// WriteBundleState records s in the bundle, atomically.
func WriteBundleState(bundle string, s BundleState) error {
	return writeJSON(filepath.Join(bundle, StateFile), s)
}

// WriteExit records e in the bundle, atomically.
func WriteExit(bundle string, e ExitState) error {
	return writeJSON(filepath.Join(bundle, ExitFile), e)
}

// ProcStartTime reads field 22 of /proc/<pid>/stat.
func ProcStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces and parentheses; fields
	// after it start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(fields[19], 10, 64)
}
