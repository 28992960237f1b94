#include "train/trace_window.h"

#include <algorithm>
#include <charconv>

#include "common/error.h"

namespace ddp::train {

namespace {

const char* const kStepsHint = "give --trace-steps as A:B, global steps A (inclusive) to B (exclusive), e.g. 10:14";

bool parse_int(const std::string& s, int64_t& v) {
  const char* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, v);
  return !s.empty() && r.ec == std::errc() && r.ptr == end;
}

}  // namespace

std::pair<int64_t, int64_t> parse_trace_steps(const std::string& text) {
  const auto colon = text.find(':');
  int64_t a = 0, b = 0;
  if (colon == std::string::npos || !parse_int(text.substr(0, colon), a) || !parse_int(text.substr(colon + 1), b))
    throw UserError("--trace-steps '" + text + "' is not of the form A:B", kStepsHint);
  if (a < 0 || b <= a)
    throw UserError("--trace-steps " + text + " holds no step (it needs 0 <= A < B)", kStepsHint);
  if (b - a > kMaxTraceSteps)
    throw UserError("--trace-steps " + text + " holds " + std::to_string(b - a) + " steps, more than " +
                        std::to_string(kMaxTraceSteps),
                    "trace at most " + std::to_string(kMaxTraceSteps) + " steps, e.g. --trace-steps " +
                        std::to_string(a) + ":" + std::to_string(a + kDefaultTraceSteps));
  return {a, b};
}

int64_t steps_per_epoch(int64_t train_samples, int world_size, int batch_size) {
  const int64_t shard = (train_samples + world_size - 1) / world_size;
  return (shard + batch_size - 1) / batch_size;
}

TraceWindow trace_window(const TrainConfig& cfg, int64_t run_first, int64_t run_end) {
  if (cfg.trace_steps.empty()) {
    const int64_t first = std::max(run_first, kDefaultTraceFirst);
    const int64_t end = std::min(first + kDefaultTraceSteps, run_end);
    return {std::max(run_first, end - kDefaultTraceSteps), end};
  }
  const auto [a, b] = parse_trace_steps(cfg.trace_steps);
  if (a < run_first || b > run_end)
    throw UserError("--trace-steps " + cfg.trace_steps + " is outside the steps this run trains, " +
                        std::to_string(run_first) + ":" + std::to_string(run_end),
                    "choose steps within " + std::to_string(run_first) + ":" + std::to_string(run_end) +
                        " (global steps: epochs x steps per epoch), or leave --trace-steps out");
  return {a, b};
}

}  // namespace ddp::train
