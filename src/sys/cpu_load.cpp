#include "sys/cpu_load.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

namespace ddp::sys {
namespace {

double seconds_of(const rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

}  // namespace

CpuTimes read_cpu_times() {
  CpuTimes c;
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal && cpu == "cpu") {
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));  // /proc/stat counts in clock ticks
    c.busy_s = (user + nice + system + irq + softirq + steal) / tick;
    c.idle_s = (idle + iowait) / tick;
  }
  return c;
}

double own_cpu_seconds() {
  rusage self{}, kids{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  return seconds_of(self) + seconds_of(kids);
}

double load_average() {
  double l = 0;
  std::ifstream("/proc/loadavg") >> l;
  return l;
}

CpuSample cpu_sample() {
  CpuSample s;
  s.machine = read_cpu_times();
  s.own_s = own_cpu_seconds();
  s.t = std::chrono::steady_clock::now();
  return s;
}

double background_cores(const CpuSample& a, const CpuSample& b) {
  const double wall = std::chrono::duration<double>(b.t - a.t).count();
  if (!std::isfinite(a.machine.busy_s) || !std::isfinite(b.machine.busy_s) || wall <= 0) return NAN;
  return std::max(0.0, ((b.machine.busy_s - a.machine.busy_s) - (b.own_s - a.own_s)) / wall);
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

}  // namespace ddp::sys
