package shim

import (
	"testing"

	"github.com/containerd/errdefs"
)

// TestStatusTransitions checks every pair of statuses against the table
// documented on Status.
func TestStatusTransitions(t *testing.T) {
	legal := map[[2]Status]bool{
		{Created, Running}: true, {Created, Stopped}: true, {Created, Deleted}: true,
		{Running, Paused}: true, {Running, Stopped}: true,
		{Paused, Running}: true, {Paused, Stopped}: true,
		{Stopped, Deleted}: true,
	}
	all := []Status{0, Created, Running, Paused, Stopped, Deleted}
	for _, from := range all {
		for _, to := range all {
			got, err := from.to(to)
			if legal[[2]Status{from, to}] {
				if err != nil || got != to {
					t.Errorf("%s -> %s: got (%s, %v), want legal", from, to, got, err)
				}
				continue
			}
			if !errdefs.IsFailedPrecondition(err) {
				t.Errorf("%s -> %s: err = %v, want FailedPrecondition", from, to, err)
			}
			if got != from {
				t.Errorf("%s -> %s: status changed to %s on an illegal move", from, to, got)
			}
		}
	}
}

func TestStatusString(t *testing.T) {
	if Status(0).String() != "invalid" || Running.String() != "running" || Status(42).String() != "status(42)" {
		t.Fatal("unexpected status names")
	}
}
