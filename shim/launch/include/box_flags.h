// Flag parsing for the C constructors of containerd-shim-box-v1
// (shim/launch/prespawn, shim/launch/deleted), which run before the Go
// runtime and so before Go's flag package.
#ifndef BOX_FLAGS_H
#define BOX_FLAGS_H

#include <string.h>

// box_flag_value returns the value of flag name in argv as Go's flag
// package reads it (-name X, --name X, -name=X, --name=X), or NULL.
static inline const char *box_flag_value(int argc, char **argv, const char *name)
{
	size_t n = strlen(name);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-')
			continue;
		a += (a[1] == '-') ? 2 : 1;
		if (strncmp(a, name, n) != 0)
			continue;
		if (a[n] == '\0')
			return i + 1 < argc ? argv[i + 1] : NULL;
		if (a[n] == '=')
			return a + n + 1;
	}
	return NULL;
}

#endif
