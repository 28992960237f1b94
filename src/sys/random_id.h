// Random identifiers for names that must not collide between processes or
// machines (job ids, rendezvous generations, temporary file names).
#pragma once
#include <cstddef>
#include <string>

namespace ddp::sys {

// 2 x `bytes` lowercase hex digits from the kernel's random source
// (getrandom), or std::random_device where that fails. Never throws for
// lack of entropy.
std::string random_hex(size_t bytes = 8);

}  // namespace ddp::sys
