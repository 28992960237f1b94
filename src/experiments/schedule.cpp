#include "experiments/schedule.h"

#include <algorithm>
#include <cmath>

namespace ddp::experiments {

std::vector<PlannedRun> plan_runs(size_t configurations, int repeats) {
  std::vector<PlannedRun> plan;
  for (int r = 1; r <= repeats; ++r)
    for (size_t c = 0; c < configurations; ++c) plan.push_back({static_cast<int>(c), r});
  return plan;
}

double relative_cost(int processes, bool serial, int threads, int cores) {
  if (serial) return 1;
  const double fit = std::max(1.0, static_cast<double>(cores) / threads);
  return 1.15 / std::min(static_cast<double>(processes), fit);
}

Eta::Eta(std::vector<double> costs, int epochs) : costs_(std::move(costs)), epochs_(epochs) {}

void Eta::start(size_t run) {
  run_ = run;
  epochs_done_ = 0;
  run_start_ = std::chrono::steady_clock::now();
}

void Eta::succeeded(double seconds) {
  done_cost_ += costs_[run_];
  done_seconds_ += seconds;
}

double Eta::seconds_left() const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start_).count();
  const double cost = costs_[run_];
  double remaining_cost = 0;
  for (size_t j = run_ + 1; j < costs_.size(); ++j) remaining_cost += costs_[j];
  double unit = done_cost_ > 0 ? done_seconds_ / done_cost_ : NAN;  // seconds per unit of cost
  double current_total = NAN;
  if (epochs_done_ > 0) current_total = elapsed * epochs_ / epochs_done_;
  else if (std::isfinite(unit)) current_total = std::max(elapsed, unit * cost);
  if (!std::isfinite(unit) && std::isfinite(current_total)) unit = current_total / cost;
  if (!std::isfinite(unit)) return NAN;
  return std::max(0.0, current_total - elapsed) + remaining_cost * unit;
}

}  // namespace ddp::experiments
