// Binding a process to its share of the cores it may use. Why ranks are
// bound at all (communication threads must share a core only with their own
// rank's compute): dist/comm_priority.h.
#pragma once
#include <string>

namespace ddp::sys {

// Binds this process, and every thread it starts afterwards, to its share of
// the cores it is allowed to use (its affinity mask, which taskset, cgroups
// or Slurm may have narrowed): local rank r of n, with t compute threads
// each, gets the r-th group of t allowed cores, counting round when n x t
// exceeds them (oversubscribed ranks then share cores evenly). Call it
// before any other thread exists. Never throws; returns what it did, for
// the log ("cores 2-3", "core 1", or "none: <why>").
std::string bind_to_cores(int local_rank, int local_world, int threads);

// The cores this thread may run on, as bind_to_cores() words it
// ("unknown" when the mask cannot be read).
std::string current_binding();

}  // namespace ddp::sys
