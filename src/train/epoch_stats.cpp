#include "train/epoch_stats.h"

#include <algorithm>

namespace ddp::train {

namespace {
constexpr size_t kWidth = kPhaseTimesFields.size() + kEpochStatsFields.size();
}  // namespace

std::vector<double> gather_rows(dist::Communicator& comm, const double* row, size_t width) {
  std::vector<double> all(width * static_cast<size_t>(comm.size()), 0.0);
  std::copy(row, row + width, all.begin() + static_cast<long>(static_cast<size_t>(comm.rank()) * width));
  comm.allreduce_sum(all.data(), all.size());
  return all;
}

std::vector<EpochStats> gather_epoch_stats(dist::Communicator& comm, const EpochStats& mine) {
  std::array<double, kWidth> row{};
  double* out = row.data();
  for (const auto f : kPhaseTimesFields) *out++ = mine.phases.*f;
  for (const auto f : kEpochStatsFields) *out++ = mine.*f;
  const std::vector<double> all = gather_rows(comm, row.data(), row.size());

  std::vector<EpochStats> ranks(static_cast<size_t>(comm.size()));
  const double* in = all.data();
  for (auto& r : ranks) {
    for (const auto f : kPhaseTimesFields) r.phases.*f = *in++;
    for (const auto f : kEpochStatsFields) r.*f = *in++;
  }
  return ranks;
}

void summarise_ranks(const std::vector<EpochStats>& ranks, EpochRecord& e) {
  const double world = static_cast<double>(ranks.size());
  for (const auto& r : ranks) {
    for (const auto f : kPhaseTimesFields) e.phases.*f += r.phases.*f / world;
    e.train_time_s = std::max(e.train_time_s, r.train_time_s);
    e.allreduce_busy_s += r.comm_busy_s / world;
    e.comm_cpu_s += r.comm_cpu_s / world;
    e.compute_preempted_s += r.preempted_s / world;
    e.median_step_s += r.median_step_s / world;
  }
}

}  // namespace ddp::train
