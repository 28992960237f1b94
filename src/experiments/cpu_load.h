// How much CPU other processes took while a run ran: all CPU time the kernel
// counted (/proc/stat, steal included) minus ours and our children's. Above
// about kBusyCores the timings of a run are disturbed.
#pragma once
#include <chrono>
#include <cmath>

namespace ddp::experiments {

// Other processes using more CPU than this (in cores) during a run make its timing unreliable.
constexpr double kBusyCores = 0.25;

struct CpuSample {
  double busy_s = NAN;  // CPU seconds of the whole machine; NaN when /proc/stat is unreadable
  double own_s = 0;     // CPU seconds of this process and its waited-for children
  std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now();
};

CpuSample cpu_sample();

// Cores other processes kept busy on average between two samples (>= 0);
// NaN when unknown.
double background_cores(const CpuSample& before, const CpuSample& after);

}  // namespace ddp::experiments
