// Writing to a file descriptor without losing a partial write.
#pragma once
#include <cstddef>

namespace ddp::sys {

// Writes all `size` bytes to `fd`, retrying partial and interrupted
// (EINTR) writes; large buffers go in pieces of at most 1 GiB. Returns false
// with errno set when a write fails (EIO when the kernel wrote nothing).
// Async-signal-safe: usable in a forked child and in signal handlers.
bool write_all(int fd, const void* data, size_t size);
// The same for a NUL-terminated string.
bool write_all(int fd, const char* text);

}  // namespace ddp::sys
