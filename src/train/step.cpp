#include "train/step.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <limits>

#include "common/clock.h"
#include "common/rng.h"

namespace ddp::train {

namespace {
using Clock = std::chrono::steady_clock;

void fill_batch(const StepModel& m, const data::Dataset& data, const StepInput& in) {
  const int n = static_cast<int>(in.samples.size());
  float* x = m.net.input(n);
  int32_t* y = m.net.labels(n);
  for (int j = 0; j < n; ++j) {
    const int64_t i = in.samples[static_cast<size_t>(j)];
    data.copy_image(i, x + static_cast<size_t>(j) * data::kPixels);
    y[j] = data.labels[static_cast<size_t>(i)];
  }
}

// The optimizer step of one summed bucket [lo, hi) of grads, unless it or
// an earlier one held a NaN or infinity (the same bits on every rank, so
// every rank decides alike; the stop flag's NaN counts).
void step_bucket(const StepModel& m, const float* grads, float lr, float scale, size_t lo, size_t hi,
                 int64_t bucket, bool& non_finite) {
  trace::Recorder* const tr = m.trace && m.trace->armed() ? m.trace : nullptr;
  const int64_t o0 = tr ? trace::now_ns() : 0;
  const size_t num_params = nn::Cnn::num_params();
  non_finite = non_finite || !all_finite(grads + lo, hi - lo);
  if (!non_finite)
    m.sgd.step(m.net.params(), grads, lr, scale, lo, std::min(hi, num_params));  // the stop flag's slot is not a parameter
  if (tr) tr->record(trace::Thread::compute, trace::Kind::optimizer, o0, trace::now_ns(), bucket);
}
}  // namespace

// NaN and infinity are the floats whose exponent bits are all set. An
// integer max over the exponents vectorises (a float sum would not).
bool all_finite(const float* x, size_t n) {
  constexpr uint32_t kExponent = 0x7f800000u;
  uint32_t most = 0;
  for (size_t i = 0; i < n; ++i) most = std::max(most, std::bit_cast<uint32_t>(x[i]) & kExponent);
  return most != kExponent;
}

GradientLayout gradient_layout(size_t bucket_bytes) {
  GradientLayout g;
  g.num_params = nn::Cnn::num_params();
  g.stop_slot = g.num_params;
  g.count = g.num_params + 1;
  // Backward reports each layer's weight and bias together, from the weight's offset.
  for (const auto& spec : nn::Cnn::param_specs())
    if (spec.name.ends_with(".weight")) g.segments.push_back(spec.offset);
  g.segments.push_back(g.stop_slot);
  for (const auto& spec : nn::Cnn::param_specs()) {
    const auto rows = static_cast<size_t>(spec.shape.at(0));
    g.matrices.push_back({spec.offset, rows, spec.count / rows});
  }
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
  fill_batch(m, data, in);
  const auto t1 = Clock::now();
  const auto res = m.net.forward(n, true, in.dropout_seed);
  const auto t2 = Clock::now();
  float* const grads = m.net.grads();
  float& stop_flag = grads[num_params];
  // A non-finite loss travels as NaN: the sum is then NaN on every rank, so
  // all of them stop in this step (train/step.h, StepResult::non_finite).
  stop_flag = !std::isfinite(res.loss) ? std::numeric_limits<float>::quiet_NaN()
                                       : (in.stop_requested ? 1.f : 0.f) + (in.snapshot_requested ? 0.5f : 0.f);
  m.sync.ready(num_params, 1);
  // Two references: small enough for std::function to hold without allocating.
  m.net.backward([&m, &in](size_t offset, size_t count) {
    if (const float* acc = in.accumulated) {
      float* g = m.net.grads();
      for (size_t i = offset; i < offset + count; ++i) g[i] += acc[i];
    }
    m.sync.ready(offset, count);
  });
  const auto t3 = Clock::now();
  // Each bucket's optimizer step runs as soon as its all-reduce is done
  // (grads = sum over ranks; the step takes the average), overlapping the
  // all-reduce of the first layers, which backward finished last.
  const float scale = in.micro_batches == 1 ? m.sync.average_scale()
                                            : m.sync.average_scale() / static_cast<float>(in.micro_batches);
  const SyncedStep synced = finish_and_step(m, grads, in.learning_rate, scale);
  const auto t4 = Clock::now();
  if (trace::Recorder* const tr = m.trace && m.trace->armed() ? m.trace : nullptr) {
    tr->record(trace::Thread::compute, trace::Kind::data, trace::ns(t0), trace::ns(t1));
    tr->record(trace::Thread::compute, trace::Kind::step, trace::ns(t0), trace::ns(t4));
  }
  StepResult r;
  r.loss = res.loss;
  r.stop = stop_flag >= 1;  // now the sum over ranks (rank 0's snapshot request adds 0.5)
  r.snapshot = stop_flag == 0.5f;
  r.non_finite = synced.non_finite || !std::isfinite(stop_flag);
  r.synced = true;
  r.times.data = seconds(t0, t1);
  r.times.forward = seconds(t1, t2);
  r.times.backward = seconds(t2, t3);
  r.times.allreduce_wait = synced.waited;
  r.times.optimizer = seconds(t3, t4) - synced.waited;
  r.times.total = seconds(t0, t4);
  r.comm_s = m.sync.last_step_comm_seconds();
  r.comm_cpu_s = m.sync.last_step_comm_cpu_seconds();
  return r;
}

StepResult forward_backward(const StepModel& m, const data::Dataset& data, const StepInput& in) {
  const auto t0 = Clock::now();
  fill_batch(m, data, in);
  const auto t1 = Clock::now();
  const auto res = m.net.forward(static_cast<int>(in.samples.size()), true, in.dropout_seed);
  const auto t2 = Clock::now();
  m.net.backward();
  const auto t3 = Clock::now();
  if (trace::Recorder* const tr = m.trace && m.trace->armed() ? m.trace : nullptr)
    tr->record(trace::Thread::compute, trace::Kind::data, trace::ns(t0), trace::ns(t1));
  StepResult r;
  r.loss = res.loss;
  r.times.data = seconds(t0, t1);
  r.times.forward = seconds(t1, t2);
  r.times.backward = seconds(t2, t3);
  r.times.total = seconds(t0, t3);
  return r;
}

SyncedStep finish_and_step(const StepModel& m, const float* grads, double lr, float scale) {
  SyncedStep r;
  int64_t bucket = 0;
  r.waited = m.sync.finish([&](size_t lo, size_t hi) {
    step_bucket(m, grads, static_cast<float>(lr), scale, lo, hi, bucket++, r.non_finite);
  });
  return r;
}

bool step_summed(const StepModel& m, const float* grads, double lr, float scale) {
  bool non_finite = false;
  for (size_t b = 0; b < m.sync.num_buckets(); ++b) {
    const auto [lo, hi] = m.sync.bucket(b);
    step_bucket(m, grads, static_cast<float>(lr), scale, lo, hi, static_cast<int64_t>(b), non_finite);
  }
  return non_finite;
}

}  // namespace ddp::train
