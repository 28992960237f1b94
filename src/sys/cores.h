// Binding a process to its share of the cores it may use. Why ranks are
// bound at all (communication threads must share a core only with their own
// rank's compute): dist/comm_priority.h.
#pragma once
#include <string>

namespace ddp::sys {

// Binds this process, and every thread it starts afterwards, to `threads`
// of the cores it is allowed to use (its affinity mask, which taskset,
// cgroups or Slurm may have narrowed: only those are ever chosen).
//
// Cores are claimed machine-wide (sys/core_claims.h), so that jobs of this
// program started side by side bind to different cores: local rank r of n
// takes the r-th group of `threads` allowed cores when nobody has claimed
// them, else the next unclaimed ones. When too few are unclaimed, it shares
// the least-claimed ones and, unless the job alone has more ranks x threads
// than cores (the launcher says so itself), sets `*sharing` (when given) to
// one line saying which cores it shares and with how many others. Without a
// usable claim directory it falls back to the r-th group, counting round
// when n x threads exceeds the allowed cores.
//
// Call it before any other thread exists. Never throws; returns what it
// did, for the log ("cores 2-3", "core 1", or "none: <why>").
std::string bind_to_cores(int local_rank, int local_world, int threads, std::string* sharing = nullptr);

// The cores this thread may run on, as bind_to_cores() words it
// ("unknown" when the mask cannot be read).
std::string current_binding();

}  // namespace ddp::sys
