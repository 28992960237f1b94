#include "sys/random_id.h"

#include <sys/random.h>

#include <random>
#include <vector>

namespace ddp::sys {

std::string random_hex(size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  size_t got = 0;
  while (got < bytes) {
    const ssize_t n = ::getrandom(buf.data() + got, bytes - got, 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got < bytes) {
    std::random_device rd;
    for (auto& b : buf) b = static_cast<unsigned char>(rd());
  }
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned char b : buf) {
    s += hex[b >> 4];
    s += hex[b & 15];
  }
  return s;
}

}  // namespace ddp::sys
