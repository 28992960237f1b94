#include "dist/comm_priority.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace ddp::dist {

std::string prioritise_communication() {
  const char* mode = std::getenv("DDP_COMM_PRIORITY");  // realtime (default) | nice | none
  const std::string want = mode && *mode ? mode : "realtime";
  if (want == "none") return "none: DDP_COMM_PRIORITY=none";
  const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
  if (want == "realtime") {
    sched_param p{};
    p.sched_priority = 1;
    bool all = true;
    int others = 0;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
      const pid_t tid = static_cast<pid_t>(std::atoi(task.path().filename().c_str()));
      if (tid == self || tid <= 0) continue;
      ++others;
      if (sched_setscheduler(tid, SCHED_FIFO, &p) != 0) all = false;
    }
    if (all && others > 0) return "realtime";
  }
  // Without the right to real-time priority: make the compute thread yield.
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(self), 10) == 0) return "nice";
  return "none: not permitted";
}

}  // namespace ddp::dist
