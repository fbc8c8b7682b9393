// Reading for the C constructors of containerd-shim-box-v1
// (shim/launch/prespawn, shim/launch/deleted), which run before the Go
// runtime.
#ifndef BOX_IO_H
#define BOX_IO_H

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

// box_read_full reads from fd into buf until len bytes, end of file or an
// error (EINTR is retried), and returns how many bytes it read.
static inline size_t box_read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

#endif
