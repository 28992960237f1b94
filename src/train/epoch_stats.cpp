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

std::vector<int64_t> gather_int64_rows(dist::Communicator& comm, const int64_t* row, size_t width) {
  std::vector<double> halves(2 * width);
  for (size_t i = 0; i < width; ++i) {
    const auto u = static_cast<uint64_t>(row[i]);
    halves[2 * i] = static_cast<double>(u >> 32);
    halves[2 * i + 1] = static_cast<double>(u & 0xffffffffu);
  }
  const std::vector<double> all = gather_rows(comm, halves.data(), halves.size());
  std::vector<int64_t> out(all.size() / 2);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<int64_t>((static_cast<uint64_t>(all[2 * i]) << 32) | static_cast<uint64_t>(all[2 * i + 1]));
  return out;
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
    e.allreduce_wait_later_rank_s += r.wait_later_rank_s / world;
    e.allreduce_wait_transfer_s += r.wait_transfer_s / world;
  }
}

}  // namespace ddp::train
