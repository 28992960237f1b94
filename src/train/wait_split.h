// What the training thread's wait for the gradients (allreduce_wait) was:
// waiting for a later rank, or moving bytes.
//
// An all-reduce cannot finish before the last rank has joined it. So when
// rank r enters bucket b's all-reduce at e_r and the last rank enters at
// L = max over ranks of e_q, rank r's all-reduce spends [e_r, L) waiting for
// that rank (empty on the last rank) and the rest moving bytes. Of the time
// the training thread waits for its buckets (GradSync::finish), the part
// that falls inside such [e_r, L) intervals is "later rank"; the rest is
// "transfer". On one machine the ranks' clocks are one clock; across
// machines each rank's times are first shifted onto rank 0's clock
// (dist/clock_sync.h), and the split is as good as that offset's
// uncertainty.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include "dist/communicator.h"
#include "dist/grad_sync.h"

namespace ddp::train {

// Seconds.
struct WaitSplit {
  double later_rank_s = 0;
  double transfer_s = 0;
};

// One step of one rank: its buckets' timings and, [bucket], the latest
// entry of any rank into each bucket's all-reduce, on the same clock.
// Buckets that did not run (all zero) count nothing.
WaitSplit split_step_wait(std::span<const dist::BucketTiming> mine, std::span<const int64_t> latest_entry_ns);

// This rank's split, summed over the steps [first, end) of an epoch, from
// `timings` ([step * buckets + bucket], this rank's clock) and
// `offset_ns` (this rank's clock minus rank 0's). A collective: every rank
// calls it with the same first, end and buckets.
WaitSplit split_epoch_wait(dist::Communicator& comm, int64_t offset_ns, std::span<const dist::BucketTiming> timings,
                           size_t buckets, int64_t first, int64_t end);

}  // namespace ddp::train
