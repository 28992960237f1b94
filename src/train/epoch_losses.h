// One epoch's loss curve: each rank's per-step losses, and the mean over
// ranks as the run records it (rounded to float). The mean is summed in rank
// order from the gathered values (a collective), so it is the same float
// whenever it is taken: at a snapshot during the epoch (train/snapshots.h),
// or at its end; and the epoch's loss is a function of the recorded values.
#pragma once
#include <cstdint>
#include <vector>

#include "dist/communicator.h"

namespace ddp::train {

class EpochLosses {
 public:
  // A new epoch of `steps` steps, resumed at step `first` with those steps'
  // recorded means (the checkpoint's, copied, never recomputed: a mean times
  // the world size and divided again is not always the same float).
  void begin(int64_t steps, int64_t first, const float* recorded_first);
  void record(int64_t step, double loss) { local_[static_cast<size_t>(step)] = loss; }
  // The means of the steps before `end` (a collective; those known already
  // are kept).
  void mean_until(dist::Communicator& comm, int64_t end);
  // [step]: the means known so far, 0 for the rest.
  const std::vector<double>& means() const { return means_; }

 private:
  std::vector<double> local_;  // this rank's, [step]
  std::vector<double> means_;  // [step]
  int64_t meaned_ = 0;         // means_ is known before this step
};

}  // namespace ddp::train
