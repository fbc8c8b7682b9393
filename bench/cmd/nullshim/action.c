// The null shim's binary actions. containerd executes the shim binary with "start" before a
// task's first RPC and with "delete" after its last (core/runtime/v2: binary.Start, and
// binary.Delete from cleanupAfterDeadShim, which the task's Delete waits for). A shim can do
// no less than be executed for both, so the null shim answers them here, before its Go
// runtime starts, and pays only the exec:
//
//   start:  print, as task API v3 bootstrap JSON, the address of the one null daemon of
//           this containerd: the value of -address (containerd's gRPC socket) with ".null"
//           appended (the rig starts the daemon there; see main.go). Paths containing '"' or
//           '\\' are refused rather than escaped.
//   delete: print an empty DeleteResponse (zero bytes) and exit 0
//   -info:  print an empty RuntimeInfo (zero bytes): containerd asks once per runtime
//           (core/runtime/v2 task_mounts_deprecated.go) and caches only an answer
//
// Any other invocation (the daemon: "serve") continues into Go.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *flag_value(int argc, char **argv, const char *name)
{
	for (int i = 1; i + 1 < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-')
			continue;
		a += (a[1] == '-') ? 2 : 1;
		if (strcmp(a, name) == 0)
			return argv[i + 1];
	}
	return NULL;
}

__attribute__((constructor)) static void null_action(int argc, char **argv)
{
	if (argc < 2)
		return;
	const char *action = argv[argc - 1];
	if (strcmp(action, "delete") == 0 || strcmp(action, "-info") == 0)
		_exit(0);
	if (strcmp(action, "start") != 0)
		return;
	const char *address = flag_value(argc, argv, "address");
	if (address == NULL || strpbrk(address, "\"\\") != NULL) {
		fputs("null shim: start needs an -address without quotes or backslashes\n", stderr);
		_exit(1);
	}
	if (printf("{\"version\":3,\"address\":\"unix://%s.null\",\"protocol\":\"ttrpc\"}", address) < 0 ||
	    fflush(stdout) != 0)
		_exit(1);
	_exit(0);
}
