// The order of the suite's runs and how long the rest will take (the ETA on
// the status line).
#pragma once
#include <chrono>
#include <cstddef>
#include <vector>

namespace ddp::experiments {

struct PlannedRun {
  int config = 0;  // index into the configurations
  int repeat = 1;  // 1-based
};

// Rounds: every configuration once, then again for each repeat, so that a
// slow spell of the machine hits every configuration alike.
std::vector<PlannedRun> plan_runs(size_t configurations, int repeats);

// Expected duration of a configuration relative to the serial run, before
// anything is measured (N processes of `threads` threads share `cores`).
double relative_cost(int processes, bool serial, int threads, int cores);

// The time left: the current run's from its epochs so far (or from the runs
// done), the later runs' from their relative costs times the seconds per
// unit of cost the finished runs took.
class Eta {
 public:
  // costs[i]: relative_cost of planned run i; epochs: of every run.
  Eta(std::vector<double> costs, int epochs);
  void start(size_t run);            // planned run `run` begins now
  void epoch_done() { ++epochs_done_; }
  int epochs_done() const { return epochs_done_; }
  void succeeded(double seconds);    // the current run finished after `seconds`
  double seconds_left() const;       // NaN until something is known

 private:
  std::vector<double> costs_;
  int epochs_;
  size_t run_ = 0;
  int epochs_done_ = 0;
  double done_cost_ = 0, done_seconds_ = 0;
  std::chrono::steady_clock::time_point run_start_ = std::chrono::steady_clock::now();
};

}  // namespace ddp::experiments
