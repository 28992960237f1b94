#include "dist/comm_priority.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "sys/env.h"

namespace ddp::dist {

namespace {

// Set once the communication threads run at real-time priority.
std::atomic<bool> g_realtime{false};

}  // namespace

std::string prioritise_threads(const std::vector<int>& thread_ids) {
  const std::string want = sys::env_string("DDP_COMM_PRIORITY", "realtime");  // realtime | nice | none
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

}  // namespace ddp::dist
