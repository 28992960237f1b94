#include "experiments/cpu_load.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>

namespace ddp::experiments {

namespace {

double cpu_seconds(const rusage& u) {
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

}  // namespace

CpuSample cpu_sample() {
  CpuSample c;
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal && cpu == "cpu")
    c.busy_s = (user + nice + system + irq + softirq + steal) / static_cast<double>(sysconf(_SC_CLK_TCK));
  rusage self{}, kids{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  c.own_s = cpu_seconds(self) + cpu_seconds(kids);
  return c;
}

double background_cores(const CpuSample& a, const CpuSample& b) {
  const double wall = std::chrono::duration<double>(b.t - a.t).count();
  if (!std::isfinite(a.busy_s) || !std::isfinite(b.busy_s) || wall <= 0) return NAN;
  return std::max(0.0, ((b.busy_s - a.busy_s) - (b.own_s - a.own_s)) / wall);
}

}  // namespace ddp::experiments
