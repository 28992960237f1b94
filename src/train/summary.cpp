#include "train/summary.h"

#include <cmath>
#include <cstdio>

namespace ddp::train {

void print_summary(std::ostream& out, const RunResult& r) {
  char line[256];
  out << "\n== summary ==\n";
  std::snprintf(line, sizeof line, "processes %d x %d thread(s)%s, batch %d per process, %d epoch(s), %s\n",
                r.world_size, r.threads_per_process,
                r.oversubscribed ? " (OVERSUBSCRIBED: more threads than cores)" : "", r.config.batch_size,
                r.config.epochs, r.config.precision.c_str());
  out << line;
  std::snprintf(line, sizeof line, "final test accuracy %.2f%%\n", 100 * r.final_test_accuracy);
  out << line;
  std::snprintf(line, sizeof line, "total time %.2f s (training %.2f s), throughput %.0f samples/s\n", r.total_time_s,
                r.train_time_s, r.throughput);
  out << line;
  PhaseTimes sum;
  for (const auto& e : r.epochs) sum += e.phases;
  const double t = r.train_time_s > 0 ? r.train_time_s : 1;
  std::snprintf(line, sizeof line,
                "time split: forward %.0f%%, backward %.0f%%, all-reduce wait %.0f%%, optimizer %.0f%%, data %.0f%%, "
                "other %.0f%%\n",
                100 * sum.forward / t, 100 * sum.backward / t, 100 * sum.allreduce_wait / t, 100 * sum.optimizer / t,
                100 * sum.data / t, 100 * sum.other / t);
  out << line;
  const double steps = static_cast<double>(r.steps_per_epoch) * static_cast<double>(r.epochs.size());
  if (r.world_size > 1 && steps > 0) {
    double cpu = 0, preempted = 0, busy = 0;
    for (const auto& e : r.epochs) {
      cpu += e.comm_cpu_s;
      preempted += e.compute_preempted_s;
      busy += e.allreduce_busy_s;
    }
    int n = 0;
    if (r.overlap == "none")
      n = std::snprintf(line, sizeof line,
                        "communication: no overlap (--overlap none): the training thread all-reduced after backward, "
                        "%.2f ms per step (per rank), %.2f ms of it CPU",
                        1e3 * busy / steps, 1e3 * cpu / steps);
    else
      n = std::snprintf(line, sizeof line, "communication: the gradient thread used %.2f ms of CPU per step (per rank)",
                        1e3 * cpu / steps);
    out << line;
    if (!std::isnan(preempted) && n > 0) {
      std::snprintf(line, sizeof line, "; the compute thread waited %.2f ms per step for its core (%s)",
                    1e3 * preempted / steps,
                    r.oversubscribed      ? "other ranks share it"
                    : r.overlap == "none" ? "taken by other threads or processes"
                                          : "preempted by communication threads");
      out << line;
    }
    out << "\n";
  }
  if (r.world_size > 1 && !std::isnan(r.bytes_per_step)) {
    std::snprintf(line, sizeof line, "all-reduce: %.3f MB per optimizer step and %.1f MB per epoch (per rank)\n",
                  1e-6 * r.bytes_per_step, 1e-6 * r.bytes_per_epoch);
    out << line;
  }
}

}  // namespace ddp::train
