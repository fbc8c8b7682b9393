package cgroup

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestMissingDirs checks only the directories New would create are rolled back.
func TestMissingDirs(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := missingDirs(root, filepath.Join(root, "a/b/c"))
	want := []string{filepath.Join(root, "a/b/c"), filepath.Join(root, "a/b")}
	if !slices.Equal(got, want) {
		t.Errorf("missingDirs = %v; want %v", got, want)
	}
	if got := missingDirs(root, filepath.Join(root, "a")); len(got) != 0 {
		t.Errorf("missingDirs of an existing dir = %v; want none", got)
	}
	if err := os.MkdirAll(filepath.Join(root, "a/b/c"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a/b/keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// a/b is not empty: it is skipped, not emptied.
	if err := rmdirAll(want); err != nil {
		t.Fatalf("rmdirAll: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a/b/c")); !os.IsNotExist(err) {
		t.Errorf("a/b/c still exists: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a/b/keep")); err != nil {
		t.Errorf("a/b/keep was removed: %v", err)
	}
}

// TestReadProcsTree checks pids are collected from a cgroup and all its descendants.
func TestReadProcsTree(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cgroup.procs", "10\n11\n")
	write("child/cgroup.procs", "")
	write("child/grand/cgroup.procs", "12\n")
	got, err := readProcsTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{10, 11, 12}; !slices.Equal(union(got), want) {
		t.Errorf("readProcsTree = %v; want %v", got, want)
	}
	if got, err := readProcsTree(filepath.Join(root, "missing")); err != nil || len(got) != 0 {
		t.Errorf("missing dir: %v, %v; want no pids, no error", got, err)
	}
	write("bad/cgroup.procs", "x\n")
	if _, err := readProcsTree(root); err == nil {
		t.Error("garbage in cgroup.procs was accepted")
	}
}

// TestUnion checks pids seen in several hierarchies are listed once, sorted.
func TestUnion(t *testing.T) {
	if got, want := union([]int{3, 1}, []int{1, 2}, nil), []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("union = %v; want %v", got, want)
	}
}
