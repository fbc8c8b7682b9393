// Package deleted is the record a daemon leaves in a bundle once it has
// deleted the bundle's task itself, and the shortcut that record allows the
// delete action.
//
// containerd runs `containerd-shim-box-v1 delete` after every task, also
// after the daemon deleted it (when its connection to the daemon closes),
// and waits for it before its own Delete returns. The daemon has released
// everything by then, so the action's only duty left is its answer, the
// DeleteResponse. Write records that answer; a C constructor in the shim
// binary (deleted.c) prints it and exits before the Go runtime starts,
// which saves a Go process start (~4 ms) on every task's Delete. Read is the
// same shortcut in Go, for builds without the constructor.
//
// The record is "<Magic> <id>\n" followed by the encoded DeleteResponse. It
// is written atomically, last, after the daemon's cleanup succeeded: a
// bundle without it gets the full cleanup.
package deleted

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/atomicfile"
)

// File is the record's name in the bundle, and Magic its first word.
const (
	File  = "box-deleted"
	Magic = "box-deleted-v1"
)

// maxResponse bounds the response a record may hold (deleted.c reads at
// most a fixed buffer): a DeleteResponse is at most 6+6+2+11+6 bytes.
const maxResponse = 64

// Write records, in bundle, that task id was deleted by its daemon and
// what the delete action answers from now on (response, an encoded
// containerd.task.v3.DeleteResponse).
func Write(bundle, id string, response []byte) error {
	if len(response) > maxResponse || id == "" || len(id) > 1024 {
		return errors.New("deleted: record out of bounds")
	}
	f, err := atomicfile.New(filepath.Join(bundle, File), 0o600)
	if err != nil {
		return err
	}
	b := append([]byte(Magic+" "+id+"\n"), response...)
	if _, err := f.Write(b); err != nil {
		f.Cancel()
		return err
	}
	return f.Close()
}

// Remove deletes bundle's record, if any: a task created in the bundle
// again is not deleted.
func Remove(bundle string) error {
	err := os.Remove(filepath.Join(bundle, File))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Read returns the response recorded in bundle for task id; ok is false
// when there is no record for id (the delete action then cleans up).
func Read(bundle, id string) (response []byte, ok bool) {
	if id == "" {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(bundle, File))
	if err != nil {
		return nil, false
	}
	head := []byte(Magic + " " + id + "\n")
	if !bytes.HasPrefix(b, head) || len(b)-len(head) > maxResponse {
		return nil, false
	}
	return b[len(head):], true
}
