// What rank 0 shows while training: on a terminal a bar per epoch (batches
// done, running loss, samples/s, ETA), redrawn at most 10 times a second;
// otherwise one plain line per epoch.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace ddp::train {

class Progress {
 public:
  // speaks: false on every rank but 0. bar: the live bar on a terminal
  // (off with --no-progress: then only the per-epoch lines).
  Progress(bool speaks, bool bar, int epochs, int world_size);
  void start_epoch(int epoch, int64_t steps);
  // samples: global samples done this epoch (all ranks).
  void step(int64_t done, double running_loss, int64_t samples);
  void end_epoch(double loss, double test_accuracy, double seconds, double samples_per_s);
  void message(const std::string& line);  // a line that does not break the bar
  void clear_bar();

 private:
  bool speaks_, bar_;
  int epochs_, world_;
  int epoch_ = 0;
  int64_t steps_ = 0;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace ddp::train
