package process

import (
	"fmt"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// recordWrites replaces the procfs writer with one that records each
// (file, value) and answers with fail(file), for the test's duration.
func recordWrites(t *testing.T, fail func(rel string) error) *[]string {
	t.Helper()
	var got []string
	old := writeProcfs
	writeProcfs = func(_ int, rel, value string) error {
		got = append(got, rel+"="+value)
		return fail(rel)
	}
	t.Cleanup(func() { writeProcfs = old })
	return &got
}

// TestExecLabelFiles checks which attribute file each label goes to, with
// what content: an AppArmor profile as "exec <profile>" to
// attr/apparmor/exec, or attr/exec on kernels without the former (as
// libapparmor); an SELinux label as is to attr/exec; always the calling
// thread's, by pid and tid.
func TestExecLabelFiles(t *testing.T) {
	tests := []struct {
		name    string
		plan    oci.ProcessPlan
		missing string // a file that does not exist
		want    []string
	}{
		{"apparmor", oci.ProcessPlan{ApparmorProfile: "box-default"}, "",
			[]string{"apparmor/exec=exec box-default"}},
		{"apparmor, old kernel", oci.ProcessPlan{ApparmorProfile: "box-default"}, "apparmor/exec",
			[]string{"apparmor/exec=exec box-default", "exec=exec box-default"}},
		{"selinux", oci.ProcessPlan{SelinuxLabel: "system_u:system_r:container_t:s0:c1,c2"}, "",
			[]string{"exec=system_u:system_r:container_t:s0:c1,c2"}},
		{"none", oci.ProcessPlan{}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			goruntime.LockOSThread()
			defer goruntime.UnlockOSThread()
			base := fmt.Sprintf("%d/task/%d/attr/", unix.Getpid(), unix.Gettid())
			for i := range tt.want {
				tt.want[i] = base + tt.want[i]
			}
			got := recordWrites(t, func(rel string) error {
				if tt.missing != "" && strings.HasSuffix(rel, "/"+tt.missing) {
					return fmt.Errorf("%s: %w", rel, errdefs.ErrNotFound)
				}
				return nil
			})
			if err := setExecLabels(&tt.plan); err != nil {
				t.Fatal(err)
			}
			if strings.Join(*got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("writes:\n%s\nwant:\n%s", strings.Join(*got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestExecLabelErrorsNameField checks that a failed write names the spec
// field and keeps the writer's classification.
func TestExecLabelErrorsNameField(t *testing.T) {
	recordWrites(t, func(string) error { return fmt.Errorf("redirected: %w", errdefs.ErrInvalidArgument) })
	err := setExecLabels(&oci.ProcessPlan{ApparmorProfile: "p"})
	if !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), "process.apparmorProfile: ") {
		t.Errorf("apparmor: %v", err)
	}
	err = setExecLabels(&oci.ProcessPlan{SelinuxLabel: "l"})
	if !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), "process.selinuxLabel: ") {
		t.Errorf("selinux: %v", err)
	}
}

// TestCheckHost checks the refusal of labels the host cannot apply, and
// their acceptance where it can.
func TestCheckHost(t *testing.T) {
	old := hostLSM
	t.Cleanup(func() { hostLSM = old })
	no, yes := func() bool { return false }, func() bool { return true }
	plan := &oci.ProcessPlan{ApparmorProfile: "p", SelinuxLabel: "l"}

	hostLSM.apparmor, hostLSM.selinux = no, yes
	if err := CheckHost(plan); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "process.apparmorProfile") {
		t.Errorf("no AppArmor: %v", err)
	}
	hostLSM.apparmor, hostLSM.selinux = yes, no
	if err := CheckHost(plan); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "process.selinuxLabel") {
		t.Errorf("no SELinux: %v", err)
	}
	hostLSM.apparmor, hostLSM.selinux = yes, yes
	if err := CheckHost(plan); err != nil {
		t.Errorf("both: %v", err)
	}
	hostLSM.apparmor, hostLSM.selinux = no, no
	if err := CheckHost(&oci.ProcessPlan{}); err != nil {
		t.Errorf("no labels: %v", err)
	}
}
