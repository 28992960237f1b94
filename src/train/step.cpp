#include "train/step.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <limits>

#include "common/rng.h"

namespace ddp::train {

namespace {
using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point from, Clock::time_point to) { return std::chrono::duration<double>(to - from).count(); }

// NaN and infinity are the floats whose exponent bits are all set. An
// integer max over the exponents vectorises (a float sum would not).
bool all_finite(const float* x, size_t n) {
  constexpr uint32_t kExponent = 0x7f800000u;
  uint32_t most = 0;
  for (size_t i = 0; i < n; ++i) most = std::max(most, std::bit_cast<uint32_t>(x[i]) & kExponent);
  return most != kExponent;
}
}  // namespace

GradientLayout gradient_layout(size_t bucket_bytes) {
  GradientLayout g;
  g.num_params = nn::Cnn::num_params();
  g.stop_slot = g.num_params;
  g.count = g.num_params + 1;
  // Backward reports each layer's weight and bias together, from the weight's offset.
  for (const auto& spec : nn::Cnn::param_specs())
    if (spec.name.ends_with(".weight")) g.segments.push_back(spec.offset);
  g.segments.push_back(g.stop_slot);
  g.buckets = dist::bucket_layout(g.count, bucket_bytes, g.segments);
  return g;
}

uint64_t dropout_seed(uint64_t seed, int64_t step, int rank) {
  return mix_seed(mix_seed(seed, static_cast<uint64_t>(step)), 0x5eed0000u + static_cast<uint64_t>(rank));
}

StepResult train_step(const StepModel& m, const data::Dataset& data, const StepInput& in) {
  const size_t num_params = nn::Cnn::num_params();  // the stop flag's slot follows the parameters
  const int n = static_cast<int>(in.samples.size());
  const auto t0 = Clock::now();
  float* x = m.net.input(n);
  int32_t* y = m.net.labels(n);
  for (int j = 0; j < n; ++j) {
    const int64_t i = in.samples[static_cast<size_t>(j)];
    data.copy_image(i, x + static_cast<size_t>(j) * data::kPixels);
    y[j] = data.labels[static_cast<size_t>(i)];
  }
  const auto t1 = Clock::now();
  const auto res = m.net.forward(n, true, in.dropout_seed);
  const auto t2 = Clock::now();
  float& stop_flag = m.net.grads()[num_params];
  // A non-finite loss travels as NaN: the sum is then NaN on every rank, so
  // all of them stop in this step (train/step.h, StepResult::non_finite).
  stop_flag = !std::isfinite(res.loss) ? std::numeric_limits<float>::quiet_NaN()
                                       : (in.stop_requested ? 1.f : 0.f) + (in.snapshot_requested ? 0.5f : 0.f);
  m.sync.ready(num_params, 1);
  m.net.backward([&](size_t offset, size_t count) { m.sync.ready(offset, count); });
  const auto t3 = Clock::now();
  // Each bucket's optimizer step runs as soon as its all-reduce is done
  // (grads = sum over ranks; the step takes the average), overlapping the
  // all-reduce of the first layers, which backward finished last.
  // A bucket whose sum holds a NaN or infinity (the same bits on every rank,
  // so every rank decides alike; the stop flag's NaN counts) is not applied,
  // nor any after it.
  const float lr = static_cast<float>(in.learning_rate);
  trace::Recorder* const tr = m.trace && m.trace->armed() ? m.trace : nullptr;
  int64_t bucket = 0;
  bool non_finite = false;
  const double waited = m.sync.finish([&](size_t lo, size_t hi) {
    const int64_t o0 = tr ? trace::now_ns() : 0;
    non_finite = non_finite || !all_finite(m.net.grads() + lo, hi - lo);
    if (!non_finite)
      m.sgd.step(m.net.params(), m.net.grads(), lr, m.sync.average_scale(), lo,
                 std::min(hi, num_params));  // the stop flag's slot is not a parameter
    if (tr) tr->record(trace::Thread::compute, trace::Kind::optimizer, o0, trace::now_ns(), bucket);
    ++bucket;
  });
  const auto t4 = Clock::now();
  if (tr) {
    tr->record(trace::Thread::compute, trace::Kind::data, trace::ns(t0), trace::ns(t1));
    tr->record(trace::Thread::compute, trace::Kind::step, trace::ns(t0), trace::ns(t4));
  }
  StepResult r;
  r.loss = res.loss;
  r.stop = stop_flag >= 1;  // now the sum over ranks
  r.snapshot = stop_flag == 0.5f;
  r.non_finite = non_finite || !std::isfinite(stop_flag);
  r.times.data = seconds(t0, t1);
  r.times.forward = seconds(t1, t2);
  r.times.backward = seconds(t2, t3);
  r.times.allreduce_wait = waited;
  r.times.optimizer = seconds(t3, t4) - waited;
  r.times.total = seconds(t0, t4);
  r.comm_s = m.sync.last_step_comm_seconds();
  r.comm_cpu_s = m.sync.last_step_comm_cpu_seconds();
  return r;
}

}  // namespace ddp::train
