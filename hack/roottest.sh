#!/usr/bin/env bash
# roottest.sh LOG PKG...: runs the packages' tests as root. `-test.root` (which enables
# testutil.RequiresRoot tests) is passed only to test binaries that define it, i.e. whose
# tests import containerd's pkg/testutil; any other test binary would reject the flag.
# Extra go test flags (e.g. -v -timeout 45m) come from $GOTESTFLAGS.
set -uo pipefail
log=$1
shift
testutil=github.com/containerd/containerd/v2/pkg/testutil
with=() without=()
while read -r pkg imports; do
	if [[ " $imports " == *" $testutil "* ]]; then with+=("$pkg"); else without+=("$pkg"); fi
done < <(go list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' "$@")
rc=0
if [ ${#with[@]} -gt 0 ]; then
	# shellcheck disable=SC2086
	hack/gotest.sh "$log" -count=1 ${GOTESTFLAGS:-} "${with[@]}" -args -test.root || rc=1
fi
if [ ${#without[@]} -gt 0 ]; then
	# shellcheck disable=SC2086
	hack/gotest.sh "${log%.log}-noflag.log" -count=1 ${GOTESTFLAGS:-} "${without[@]}" || rc=1
fi
exit $rc
