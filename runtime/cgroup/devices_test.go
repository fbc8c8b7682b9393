package cgroup

import (
	"testing"

	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestNormalizeDevicesDefaultSpec checks that containerd's default device
// rules (a leading deny-all with no type, major or minor) build a v2 eBPF
// filter: without normalizing, the builder dereferences the nil major.
func TestNormalizeDevicesDefaultSpec(t *testing.T) {
	one, three := int64(1), int64(3)
	rules := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: &one, Minor: &three, Access: "rwm"},
	}
	got := normalizeDevices(rules)
	if got[0].Type != "a" || *got[0].Major != wildcard || *got[0].Minor != wildcard {
		t.Fatalf("deny-all not spelled out: %+v", got[0])
	}
	if got[1].Type != "c" || *got[1].Major != 1 || *got[1].Minor != 3 {
		t.Fatalf("explicit rule changed: %+v", got[1])
	}
	if rules[0].Type != "" || rules[0].Major != nil {
		t.Fatal("input rules modified")
	}
	if _, _, err := cgroup2.DeviceFilter(got); err != nil {
		t.Fatalf("filter of normalized rules: %v", err)
	}
	if normalizeDevices(nil) != nil {
		t.Fatal("nil rules must stay nil (not controlled)")
	}
}
