#include "sys/fd.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ddp::sys {

bool write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const size_t piece = size < (size_t{1} << 30) ? size : (size_t{1} << 30);
    const ssize_t w = ::write(fd, p, piece);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    if (w == 0) {
      errno = EIO;
      return false;
    }
    p += w;
    size -= static_cast<size_t>(w);
  }
  return true;
}

bool write_all(int fd, const char* text) { return write_all(fd, text, std::strlen(text)); }

}  // namespace ddp::sys
