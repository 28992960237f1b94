// Facts about this machine, recorded with every result.
#pragma once
#include <string>

namespace ddp::sys {

// Cores online (sysconf), at least 1. Not the cores this process may use:
// see sys/cores.h for its affinity mask.
int online_cores();
// The first "model name" of /proc/cpuinfo, or "unknown".
std::string cpu_model();
// This machine's host name ("" when it cannot be read).
std::string hostname();
// Physical memory in GiB (2^30 bytes).
double memory_gib();
// The kernel's id of this boot (/proc/sys/kernel/random/boot_id; "" when it
// cannot be read). Processes that report the same id run on one kernel and
// so share CLOCK_MONOTONIC (unless a time namespace shifts it).
std::string boot_id();
// The compiler this program was built with, e.g. "g++ 12.2.0".
std::string compiler();

}  // namespace ddp::sys
