//go:build linux

package rootfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// reportTargetsOutside wraps mkMountpoint in the child so that every mount
// target it hands to mount(2) is checked against the rootfs: a target the
// kernel resolves outside of rootfs is printed as "escape: <path>" on
// stderr. This is the test's oracle for "no mount ever lands outside the
// rootfs"; the mount itself only exists in the child's mount namespace.
func reportTargetsOutside(rootfs string) {
	inner := mkMountpoint
	mkMountpoint = func(root *os.File, dest string, dir bool) (*os.File, error) {
		f, err := inner(root, dest, dir)
		if err != nil {
			return nil, err
		}
		where, lerr := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
		if lerr != nil || !isUnder(where, rootfs) {
			fmt.Fprintf(os.Stderr, "escape: %s -> %s (%v)\n", dest, where, lerr)
		}
		return f, nil
	}
}

// raceResult is what a run of the exchange race saw.
type raceResult struct {
	runs, succeeded, mounts, escapes, swaps int
	hostEntries                             []string
	markerChanged                           bool
	firstEscape                             string
}

// raceRunsWant is how many children each run starts; each makes
// raceMountsPerRun mounts through the raced directory, so a run makes 2000
// racing mounts (CVE-2021-30465 asks for at least 500).
const (
	raceRunsWant     = 500
	raceMountsPerRun = 4
	raceTimeBudget   = 40 * time.Second
)

// runExchangeRace builds a rootfs and a host "volume" dir vol holding
// race/ (a directory) and link (a symlink to a host directory outside the
// rootfs that holds a marker file). The plan binds vol at /vol and then
// mounts tmpfs at /vol/race/m<i>, while a goroutine swaps race and link
// with renameat2(RENAME_EXCHANGE) as fast as it can. It stops after
// raceRunsWant children, at the first escape when stopAtEscape, or when
// the time budget is spent.
func runExchangeRace(t *testing.T, env []string, stopAtEscape bool) raceResult {
	t.Helper()
	root := newRootfs(t, nil)
	base := t.TempDir()
	vol := filepath.Join(base, "vol")
	host := filepath.Join(base, "host-marker-dir")
	for _, d := range []string{filepath.Join(vol, "race"), host} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const marker = "HOST MARKER\n"
	writeFile(t, filepath.Join(host, "marker"), marker)
	if err := os.Symlink(host, filepath.Join(vol, "link")); err != nil {
		t.Fatal(err)
	}
	// In the rootfs, the symlink's absolute target resolves to a directory
	// of the rootfs: with in-root resolution the mounts succeed there.
	if err := os.MkdirAll(filepath.Join(root, host), 0o755); err != nil {
		t.Fatal(err)
	}
	mounts := []specs.Mount{{Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind"}}}
	for i := range raceMountsPerRun {
		mounts = append(mounts, specs.Mount{Destination: fmt.Sprintf("/vol/race/m%d", i), Type: "tmpfs", Source: "tmpfs"})
	}
	plan := newPlan(t, root, &specs.Spec{Mounts: mounts})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var res raceResult
	wg.Add(1)
	go func() {
		defer wg.Done()
		a, b := filepath.Join(vol, "race"), filepath.Join(vol, "link")
		for ctx.Err() == nil {
			if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("renameat2(RENAME_EXCHANGE): %v", err)
				return
			}
			res.swaps++
		}
	}()
	deadline := time.Now().Add(raceTimeBudget)
	for res.runs < raceRunsWant && time.Now().Before(deadline) {
		r := child{plan: plan, script: "true", env: append([]string{envTargets + "=1"}, env...)}.run(t)
		res.runs++
		if r.code == 0 {
			res.succeeded++
		}
		res.mounts += raceMountsPerRun
		for _, line := range strings.Split(r.stderr, "\n") {
			if strings.HasPrefix(line, "escape: ") {
				res.escapes++
				if res.firstEscape == "" {
					res.firstEscape = line
				}
			}
		}
		if names := dirEntries(t, host); !slices.Equal(names, []string{"marker"}) {
			res.hostEntries = names
		}
		if stopAtEscape && (res.escapes > 0 || res.hostEntries != nil) {
			break
		}
	}
	cancel()
	wg.Wait()
	if data, err := os.ReadFile(filepath.Join(host, "marker")); err != nil || string(data) != marker {
		res.markerChanged = true
	}
	return res
}

// TestMountExchangeRace is the CVE-2021-30465 check (runc's symlink-exchange
// race on a shared volume): while a process outside the container swaps a
// directory of a volume with a symlink to a host directory
// (renameat2(RENAME_EXCHANGE)), the runtime mounts tmpfs through that
// directory, 500 times in 2000 mounts. No mount target may resolve outside
// the rootfs, nothing may be created in the host directory and its marker
// file must be unchanged. Negative control: with mountpoints resolved
// lexically on the host (filepath.Join, as runc did), the same race escapes.
func TestMountExchangeRace(t *testing.T) {
	t.Run("in-root", func(t *testing.T) {
		res := runExchangeRace(t, nil, false)
		t.Logf("%d runs (%d succeeded, the rest refused), %d racing mounts, %d swaps, %d escapes",
			res.runs, res.succeeded, res.mounts, res.swaps, res.escapes)
		if res.runs < raceRunsWant {
			t.Errorf("only %d of %d runs fit in %v", res.runs, raceRunsWant, raceTimeBudget)
		}
		if res.swaps < res.runs {
			t.Errorf("only %d swaps in %d runs: the race did not run", res.swaps, res.runs)
		}
		if res.escapes != 0 || res.hostEntries != nil || res.markerChanged {
			t.Errorf("escaped the rootfs: %d mount targets outside (first: %s), host dir %q, marker changed %v",
				res.escapes, res.firstEscape, res.hostEntries, res.markerChanged)
		}
	})
	t.Run("lexical-control", func(t *testing.T) {
		res := runExchangeRace(t, []string{envNaiveMkdir + "=1"}, true)
		t.Logf("%d runs, %d swaps until the first escape: %s; host dir %q", res.runs, res.swaps, res.firstEscape, res.hostEntries)
		if res.escapes == 0 && res.hostEntries == nil {
			t.Errorf("lexical resolution did not escape in %d runs (test proves nothing)", res.runs)
		}
	})
}
