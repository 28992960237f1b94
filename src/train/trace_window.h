// Which training steps --trace records: --trace-steps A:B, global step
// numbers (counted from 0 over the whole run, as a checkpoint counts them),
// A inclusive, B exclusive. Without it: 4 steps from step 10, past the
// first steps' warm-up (oneDNN builds its primitives, the caches fill), or
// the last 4 steps of a shorter run.
#pragma once
#include <cstdint>
#include <string>
#include <utility>

#include "train/config.h"

namespace ddp::train {

inline constexpr int64_t kDefaultTraceFirst = 10;
inline constexpr int64_t kDefaultTraceSteps = 4;
// A trace holds at most this many steps: it is for looking at steps one by
// one, and its events are kept in memory until it is written.
inline constexpr int64_t kMaxTraceSteps = 256;

// "A:B" -> {A, B}. Throws UserError unless 0 <= A < B and B - A <= kMaxTraceSteps.
std::pair<int64_t, int64_t> parse_trace_steps(const std::string& text);

// Steps per epoch on each rank: the shard of `train_samples` a rank gets
// (DistributedSampler pads to equal shards), in batches.
int64_t steps_per_epoch(int64_t train_samples, int world_size, int batch_size);

struct TraceWindow {
  int64_t first = 0, end = 0;  // global steps [first, end)
};
// The steps to trace in a run that trains global steps [run_first,
// run_end) (run_first > 0 when resumed). Throws UserError when
// cfg.trace_steps lies outside them.
TraceWindow trace_window(const TrainConfig& cfg, int64_t run_first, int64_t run_end);

}  // namespace ddp::train
