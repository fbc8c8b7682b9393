package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// TestParseOOMKill reads the counter from v1 memory.oom_control and v2 memory.events content.
func TestParseOOMKill(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    uint64
		isOK bool
	}{
		{"oom_kill_disable 0\nunder_oom 0\noom_kill 7\n", 7, true},
		{"low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 1\n", 2, true},
		{"oom_kill_disable 0\nunder_oom 0\n", 0, false}, // kernel < 4.13
		{"oom_kill x\n", 0, false},
	} {
		n, ok := parseOOMKill([]byte(tc.in))
		if n != tc.n || ok != tc.isOK {
			t.Errorf("parseOOMKill(%q) = %d, %v; want %d, %v", tc.in, n, ok, tc.n, tc.isOK)
		}
	}
}

// TestOOMEventsV2Inotify checks the v2 path against a regular file standing in for
// memory.events: a modification is reported under the key, one inotify fd serves several
// cgroups, a removed key is no longer reported, and Close ends a blocked Wait.
func TestOOMEventsV2Inotify(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	for _, d := range []string{dirA, dirB} {
		if err := os.WriteFile(filepath.Join(d, "memory.events"), []byte("oom 0\noom_kill 0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, b := &v2Cgroup{path: "/a", dir: dirA}, &v2Cgroup{path: "/b", dir: dirB}
	e, err := NewOOMEvents()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Add(a, 1); err != nil {
		t.Fatal(err)
	}
	if err := e.Add(b, 2); err != nil {
		t.Fatal(err)
	}
	if n, err := OOMKills(a); err != nil || n != 0 {
		t.Fatalf("OOMKills = %d, %v; want 0", n, err)
	}

	write := func(dir string, n string) {
		if err := os.WriteFile(filepath.Join(dir, "memory.events"), []byte("oom 1\noom_kill "+n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(dirB, "1")
	keys := waitKeys(t, e)
	if !slices.Equal(keys, []uint64{2}) {
		t.Fatalf("keys %v, want [2]", keys)
	}
	if n, err := OOMKills(b); err != nil || n != 1 {
		t.Fatalf("OOMKills = %d, %v; want 1", n, err)
	}

	e.Remove(2)
	write(dirB, "2")
	write(dirA, "1")
	if keys := waitKeys(t, e); !slices.Equal(keys, []uint64{1}) {
		t.Fatalf("keys %v after removing 2, want [1]", keys)
	}

	done := make(chan error, 1)
	go func() { _, err := e.Wait(); done <- err }()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrOOMEventsClosed) {
			t.Fatalf("Wait after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end Wait")
	}
	if err := e.Add(a, 3); !errors.Is(err, ErrOOMEventsClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
}

// TestOOMEventsRefusesOtherCgroups checks that cgroups of an unknown kind fail with
// NotImplemented, which the shim logs instead of failing Create.
func TestOOMEventsRefusesOtherCgroups(t *testing.T) {
	e, err := NewOOMEvents()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Add(nil, 1); !errdefs.IsNotImplemented(err) {
		t.Fatalf("Add(nil) = %v, want NotImplemented", err)
	}
	if _, err := OOMKills(nil); !errdefs.IsNotImplemented(err) {
		t.Fatalf("OOMKills(nil) = %v, want NotImplemented", err)
	}
}

func waitKeys(t *testing.T, e *OOMEvents) []uint64 {
	t.Helper()
	type result struct {
		keys []uint64
		err  error
	}
	ch := make(chan result, 1)
	go func() { k, err := e.Wait(); ch <- result{k, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.keys
	case <-time.After(10 * time.Second):
		t.Fatal("no OOM notification within 10s")
		return nil
	}
}
