//go:build linux && cgo

package prespawn

import "testing"

// TestJoinsGroup checks the constructor's reading of config.json against
// the group start computes (launch.groupID: runc's group annotation first,
// then CRI's sandbox id, else the container itself): no daemon is
// prespawned exactly when the group is another container's. Anything it
// cannot read means "prespawn", which is always safe.
func TestJoinsGroup(t *testing.T) {
	for _, tc := range []struct {
		name, config, id string
		want             bool
	}{
		{"no annotations", `{"ociVersion":"1.2.0","process":{"args":["true"]}}`, "c1", false},
		{"empty", ``, "c1", false},
		{"pod container", `{"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"sb1"}}`, "c1", true},
		{"pod sandbox", `{"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-id":"sb1"}}`, "sb1", false},
		{"sandbox id prefix of id", `{"annotations":{"io.kubernetes.cri.sandbox-id":"sb"}}`, "sb1", true},
		{"id prefix of sandbox id", `{"annotations":{"io.kubernetes.cri.sandbox-id":"sb12"}}`, "sb1", true},
		{"runc group", `{"annotations":{"io.containerd.runc.v2.group":"g"}}`, "c1", true},
		{"runc group first", `{"annotations":{"io.kubernetes.cri.sandbox-id":"c1","io.containerd.runc.v2.group":"g"}}`, "c1", true},
		{"runc group is the id", `{"annotations":{"io.containerd.runc.v2.group":"c1","io.kubernetes.cri.sandbox-id":"sb1"}}`, "c1", false},
		{"empty runc group falls to CRI", `{"annotations":{"io.containerd.runc.v2.group":"","io.kubernetes.cri.sandbox-id":"sb1"}}`, "c1", true},
		{"whitespace", "{\"annotations\": {\n  \"io.kubernetes.cri.sandbox-id\" :\t\"sb1\"\n}}", "c1", true},
		{"key as an escaped value", `{"process":{"env":["X=\"io.kubernetes.cri.sandbox-id\":\"sb1\""]}}`, "c1", false},
		{"not a string", `{"annotations":{"io.kubernetes.cri.sandbox-id":5}}`, "c1", false},
		{"escaped value", `{"annotations":{"io.kubernetes.cri.sandbox-id":"s\"b"}}`, "c1", false},
		{"truncated", `{"annotations":{"io.kubernetes.cri.sandbox-id":"sb1`, "c1", false},
		{"truncated after key", `{"annotations":{"io.kubernetes.cri.sandbox-id"`, "c1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := joinsGroup([]byte(tc.config), tc.id); got != tc.want {
				t.Errorf("joinsGroup(%s, %q) = %v, want %v", tc.config, tc.id, got, tc.want)
			}
		})
	}
}
