// How busy the CPUs are: the whole machine's CPU time (/proc/stat), this
// process's own (getrusage), the load average, and the time a thread waited
// for a core (/proc/thread-self/schedstat). All times are in seconds.
#pragma once
#include <chrono>
#include <limits>

namespace ddp::sys {

// The machine's CPU time since boot, summed over all CPUs, from the "cpu"
// line of /proc/stat. Busy is user + nice + system + irq + softirq + steal
// (steal: time a hypervisor gave to someone else, which a run also loses);
// idle is idle + iowait. NaN when /proc/stat cannot be read.
struct CpuTimes {
  double busy_s = std::numeric_limits<double>::quiet_NaN();
  double idle_s = std::numeric_limits<double>::quiet_NaN();
};
CpuTimes read_cpu_times();

// CPU time (user + system) of this process and of its children that have
// been waited for (getrusage RUSAGE_SELF + RUSAGE_CHILDREN).
double own_cpu_seconds();

// The 1-minute load average (/proc/loadavg); 0 when it cannot be read.
double load_average();

// A reading of the machine's and our own CPU time, and when it was taken.
struct CpuSample {
  CpuTimes machine;
  double own_s = 0;
  std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now();
};
CpuSample cpu_sample();

// How many cores other processes kept busy between two samples on average:
// (machine busy time - our own and our children's) / wall time, at least 0.
// NaN when either sample lacks the machine's time or no time passed. Our
// children count as ours only once waited for: take `b` after reaping them.
double background_cores(const CpuSample& a, const CpuSample& b);

// Seconds the calling thread has spent ready to run but waiting for a core
// (preempted by a favoured communication thread, or sharing a core), from
// the kernel's /proc/thread-self/schedstat; -1 where the kernel does not
// keep it. The difference of two readings is what the communication cost
// the computing thread in CPU.
double runnable_wait_seconds();

}  // namespace ddp::sys
