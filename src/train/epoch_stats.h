// What every rank measures about one epoch's training phase, gathered
// across ranks field by field (no positions in a row of numbers to keep in
// step with the struct), and summarised into the epoch's record.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "dist/communicator.h"
#include "train/results.h"

namespace ddp::train {

// One rank's measurements of one epoch's training phase (seconds).
struct EpochStats {
  PhaseTimes phases;        // summed over this rank's steps; `other` = train_time_s minus the rest
  double train_time_s = 0;  // the training phase, wall-clock
  double comm_busy_s = 0;   // GradSync::last_step_comm_seconds, summed
  double comm_cpu_s = 0;    // GradSync::last_step_comm_cpu_seconds, summed
  // phases.allreduce_wait split (train/wait_split.h): waiting while the
  // all-reduce waited for a later rank, and the rest (moving the bytes).
  double wait_later_rank_s = 0;
  double wait_transfer_s = 0;
  double preempted_s = 0;   // runnable but waiting for a core (NaN where the kernel does not say)
  double median_step_s = 0; // median of the steps' times (NaN without steps)
};

// EpochStats' own fields (beyond `phases`, whose fields are
// kPhaseTimesFields): what gather_epoch_stats sends. A field added to the
// struct but not here fails the static_assert.
inline constexpr std::array<double EpochStats::*, 7> kEpochStatsFields = {
    &EpochStats::train_time_s,      &EpochStats::comm_busy_s,     &EpochStats::comm_cpu_s,
    &EpochStats::wait_later_rank_s, &EpochStats::wait_transfer_s, &EpochStats::preempted_s,
    &EpochStats::median_step_s};
static_assert(sizeof(EpochStats) == sizeof(PhaseTimes) + kEpochStatsFields.size() * sizeof(double),
              "kEpochStatsFields must list every field of EpochStats");

// Every rank's stats, [rank], on every rank (a collective: all ranks call it).
std::vector<EpochStats> gather_epoch_stats(dist::Communicator& comm, const EpochStats& mine);

// Into e: the phases and communication figures as the mean over ranks, the
// training time as the slowest rank's (NaN stays NaN: a rank that cannot
// tell makes the mean unknown).
void summarise_ranks(const std::vector<EpochStats>& ranks, EpochRecord& e);

// Every rank's `width` numbers, [rank * width + i], on every rank: each rank
// fills its own row of zeros and the sum over ranks gives every row
// (exact: each element has one non-zero term).
std::vector<double> gather_rows(dist::Communicator& comm, const double* row, size_t width);
// The same for 64-bit integers (nanosecond timestamps), exact: each is sent
// as two 32-bit halves.
std::vector<int64_t> gather_int64_rows(dist::Communicator& comm, const int64_t* row, size_t width);

}  // namespace ddp::train
