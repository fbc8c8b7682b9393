#!/bin/sh
# attacks.test in the VM (hack/vm/build.sh installs it as /tests/bin/attacks.test for the
# VM_TESTS entry "attacks"): the attack tests of the integration package (TestAttacks in
# integration/attacks_test.go) on the VM's pure cgroup2, each with a private containerd and the
# box shim, as on the host. It lists only those tests and runs the package's static test binary
# with the environment the harness needs: the shim and containerd + ctr of the "containerd"
# entry (/tests/containerd/bin), the prebuilt attacker (no compiler in the VM), and
# BOX_ATTACK_SLOW=1, which sizes samples and timeouts for TCG.
D=/tests/integration
export PATH=/tests/containerd/bin:/bin:/sbin:/usr/bin:/usr/sbin
export BOX_SHIM_BIN=/tests/containerd/bin/containerd-shim-box-v1 BOX_TOOLS=/tests/containerd \
	BOX_ATTACKER=$D/attacker BOX_ATTACK_SLOW=1
for a in "$@"; do
	[ "$a" = -test.list ] && exec "$D/integration.test" -test.list "^TestAttacks$"
done
exec "$D/integration.test" "$@"
