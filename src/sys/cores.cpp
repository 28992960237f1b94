#include "sys/cores.h"

#include <sched.h>

#include <vector>

namespace ddp::sys {
namespace {

std::string range_text(const std::vector<int>& cpus) {
  if (cpus.size() == 1) return "core " + std::to_string(cpus.front());
  bool contiguous = true;
  for (size_t i = 1; i < cpus.size(); ++i) contiguous = contiguous && cpus[i] == cpus[i - 1] + 1;
  if (contiguous) return "cores " + std::to_string(cpus.front()) + "-" + std::to_string(cpus.back());
  std::string s = "cores ";
  for (size_t i = 0; i < cpus.size(); ++i) s += (i ? "," : "") + std::to_string(cpus[i]);
  return s;
}

// The CPUs this thread may run on (empty if the mask cannot be read).
std::vector<int> allowed_cpus() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  return cpus;
}

}  // namespace

std::string bind_to_cores(int local_rank, int local_world, int threads) {
  if (local_rank < 0 || local_world <= 0 || local_rank >= local_world || threads <= 0)
    return "none: local rank unknown";
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.empty()) return "none: cannot read the affinity mask";
  if (cpus.size() < 2) return "none: a single core";
  const size_t n = cpus.size();
  const size_t t = static_cast<size_t>(threads) < n ? static_cast<size_t>(threads) : n;
  std::vector<int> mine;
  for (size_t k = 0; k < t; ++k) mine.push_back(cpus[(static_cast<size_t>(local_rank) * t + k) % n]);
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : mine) CPU_SET(c, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) return "none: not permitted";
  return range_text(mine);
}

std::string current_binding() {
  const std::vector<int> cpus = allowed_cpus();
  return cpus.empty() ? "unknown" : range_text(cpus);
}

}  // namespace ddp::sys
