#include "sys/cores.h"

#include <sched.h>

#include <algorithm>
#include <vector>

#include "sys/core_claims.h"

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

// Claims `t` cores in `order`: unclaimed ones first, then the least-claimed
// (`others`: the most claims already on a shared one). Fewer than `t` when
// the claim directory cannot be used.
std::vector<int> claim(const std::vector<int>& order, size_t t, int& others) {
  std::vector<int> mine;
  CoreClaims claims(core_claim_dir());
  if (!claims.usable()) return mine;
  for (int c : order)
    if (mine.size() < t && claims.count(c) == 0 && claims.claim_free(c)) mine.push_back(c);
  while (mine.size() < t) {
    int best = -1, best_count = 0;
    for (int c : order) {
      if (std::find(mine.begin(), mine.end(), c) != mine.end()) continue;
      const int k = claims.count(c);
      if (k >= 0 && (best < 0 || k < best_count)) best = c, best_count = k;
    }
    if (best < 0 || !claims.claim_shared(best)) break;
    mine.push_back(best);
    others = std::max(others, best_count);
  }
  return mine;
}

}  // namespace

std::string bind_to_cores(int local_rank, int local_world, int threads, std::string* sharing) {
  if (local_rank < 0 || local_world <= 0 || local_rank >= local_world || threads <= 0)
    return "none: local rank unknown";
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.empty()) return "none: cannot read the affinity mask";
  if (cpus.size() < 2) return "none: a single core";
  const size_t n = cpus.size();
  const size_t t = static_cast<size_t>(threads) < n ? static_cast<size_t>(threads) : n;
  // The order of preference: the r-th group first, then round.
  std::vector<int> order;
  for (size_t k = 0; k < n; ++k) order.push_back(cpus[(static_cast<size_t>(local_rank) * t + k) % n]);
  int others = 0;
  std::vector<int> mine = claim(order, t, others);
  const bool shared = others > 0;
  if (mine.size() < t) {  // no claims to be had: the r-th group, as if alone
    mine.assign(order.begin(), order.begin() + static_cast<long>(t));
  }
  std::sort(mine.begin(), mine.end());
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : mine) CPU_SET(c, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) return "none: not permitted";
  const bool job_oversubscribes = static_cast<size_t>(local_world) * t > n;
  if (shared && sharing && !job_oversubscribes)
    *sharing = "no free core among the " + std::to_string(n) + " it may use (other jobs of this program claim them): "
               "local rank " + std::to_string(local_rank) + " shares " + range_text(mine) + " with " +
               std::to_string(others) + " other process(es); expect lower throughput (run fewer jobs at once, or "
               "give each its own cores: taskset -c LIST)";
  return range_text(mine);
}

std::string current_binding() {
  const std::vector<int> cpus = allowed_cpus();
  return cpus.empty() ? "unknown" : range_text(cpus);
}

}  // namespace ddp::sys
