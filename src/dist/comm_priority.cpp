#include "dist/comm_priority.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace ddp::dist {

namespace {

// Set once the communication threads run at real-time priority.
std::atomic<bool> g_realtime{false};

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

std::string prioritise_threads(const std::vector<int>& thread_ids) {
  const char* mode = std::getenv("DDP_COMM_PRIORITY");  // realtime (default) | nice | none
  const std::string want = mode && *mode ? mode : "realtime";
  if (want == "none") return "none: DDP_COMM_PRIORITY=none";
  if (thread_ids.empty()) return "none: no communication thread";
  const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
  if (want == "realtime") {
    sched_param p{};
    p.sched_priority = 1;
    bool all = true;
    for (int tid : thread_ids)
      if (sched_setscheduler(tid, SCHED_FIFO | SCHED_RESET_ON_FORK, &p) != 0) all = false;
    if (all) {
      g_realtime = true;
      return "realtime";
    }
  }
  // Without the right to real-time priority: make the compute thread yield.
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(self), 10) == 0) return "nice";
  return "none: not permitted";
}

std::string prioritise_communication() {
  const int self = static_cast<int>(syscall(SYS_gettid));
  std::vector<int> others;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    const int tid = std::atoi(task.path().filename().c_str());
    if (tid != self && tid > 0) others.push_back(tid);
  }
  return prioritise_threads(others);
}

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

CommCallPriority::CommCallPriority() {
  if (!g_realtime || sched_getscheduler(0) != SCHED_OTHER) return;
  sched_param p{};
  p.sched_priority = 1;
  raised_ = sched_setscheduler(0, SCHED_FIFO, &p) == 0;
}

CommCallPriority::~CommCallPriority() {
  if (!raised_) return;
  sched_param p{};
  p.sched_priority = 0;
  sched_setscheduler(0, SCHED_OTHER, &p);
}

int ranks_on_this_machine(int world) {
  for (const char* name : {"LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE"}) {
    const char* v = std::getenv(name);
    const int n = v ? std::atoi(v) : 0;
    if (n > 0 && n <= world) return n;
  }
  return world;
}

double runnable_wait_seconds() {
  // "<ns on a cpu> <ns waiting on a run queue> <timeslices>"
  std::FILE* f = std::fopen("/proc/thread-self/schedstat", "r");
  if (!f) return -1;
  unsigned long long run_ns = 0, wait_ns = 0;
  const int n = std::fscanf(f, "%llu %llu", &run_ns, &wait_ns);
  std::fclose(f);
  return n == 2 ? 1e-9 * static_cast<double>(wait_ns) : -1;
}

}  // namespace ddp::dist
