#include "train/epoch_losses.h"

#include <algorithm>

#include "train/epoch_stats.h"

namespace ddp::train {

void EpochLosses::begin(int64_t steps, int64_t first, const float* recorded_first) {
  local_.assign(static_cast<size_t>(steps), 0.0);
  means_.assign(static_cast<size_t>(steps), 0.0);
  std::copy(recorded_first, recorded_first + first, means_.begin());
  meaned_ = first;
}

void EpochLosses::mean_until(dist::Communicator& comm, int64_t end) {
  const size_t width = static_cast<size_t>(end - meaned_);
  if (width == 0) return;
  const std::vector<double> all = gather_rows(comm, local_.data() + meaned_, width);
  for (size_t i = 0; i < width; ++i) {
    double sum = 0;
    for (int q = 0; q < comm.size(); ++q) sum += all[static_cast<size_t>(q) * width + i];
    means_[static_cast<size_t>(meaned_) + i] = static_cast<float>(sum / comm.size());
  }
  meaned_ = end;
}

}  // namespace ddp::train
