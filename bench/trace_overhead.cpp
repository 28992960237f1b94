// trace_overhead: what --trace costs a training step, from one run.
//
// The trainer's step (train::train_step) on a synthetic batch of 64, in a
// world of two whose collectives return at once (so GradSync runs its
// communication thread and every part of the step records, but no peer's
// timing enters the figure), alternating blocks of steps with tracing off
// (null recorder) and on (armed), and prints:
//   - the median step with tracing off and on, and their ratio;
//   - the cost of recording measured directly (a clock read and a record()
//     per event) times the events a step records, as a share of the step:
//     the figure that a shared, noisy machine does not blur.
//
//   trace_overhead [blocks]     (default 15 blocks of 8 steps each way)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "common/trace.h"
#include "dist/grad_sync.h"
#include "nn/cnn.h"
#include "optim/sgd.h"
#include "train/step.h"

using namespace ddp;
using Clock = std::chrono::steady_clock;

namespace {

data::Dataset synthetic(int64_t n) {
  data::Dataset d;
  d.size = n;
  std::mt19937 gen(3);
  d.pixels.resize(static_cast<size_t>(n) * data::kPixels);
  for (auto& p : d.pixels) p = static_cast<uint8_t>(gen() & 0xff);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(gen() % 10));
  for (int x = 0; x < 256; ++x) d.normalised[x] = (static_cast<float>(x) / 255.f - data::kMean) / data::kStd;
  return d;
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

// Nanoseconds of one clock read plus one record(), the most a traced event
// adds (the layers reuse the clock reads their timing already makes).
double ns_per_event() {
  const int n = 1 << 20;
  trace::Recorder r(0, 1, static_cast<size_t>(n), 0);
  r.begin_step(0);
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    const int64_t t = trace::now_ns();
    r.record(trace::Thread::compute, trace::Kind::forward, t, t + 1, i & 7);
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / n;
}

}  // namespace

int main(int argc, char** argv) {
  const int blocks = argc > 1 ? std::max(1, std::atoi(argv[1])) : 15;
  const int per_block = 8, batch = 64;
  nn::set_compute_threads(1);
  const auto data = synthetic(1024);
  const train::GradientLayout layout = train::gradient_layout(64 << 10);
  nn::Cnn net(0.5f, layout.count - layout.num_params);
  net.init(7);
  optim::Sgd sgd(layout.num_params, 0.9f);
  dist::SilentCommunicator two(2);
  dist::GradSync sync(two, net.grads(), layout.count, 64 << 10, layout.segments);
  trace::Recorder recorder(0, static_cast<int64_t>(blocks) * per_block);
  const train::StepModel off{net, sgd, sync, nullptr}, on{net, sgd, sync, &recorder};

  std::vector<int64_t> samples(batch);
  int64_t step = 0, traced = 0;
  auto run = [&](bool tracing) {
    net.set_trace(tracing ? &recorder : nullptr);
    sync.set_trace(tracing ? &recorder : nullptr);
    for (int k = 0; k < batch; ++k) samples[static_cast<size_t>(k)] = (step * batch + k) % data.size;
    if (tracing) recorder.begin_step(traced++);
    const auto t0 = Clock::now();
    train::train_step(tracing ? on : off, data, {samples, train::dropout_seed(7, step, 0), 0.01, false});
    ++step;
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  for (int s = 0; s < 5; ++s) run(false);  // warm-up: primitives, scratchpads
  std::vector<double> t_off, t_on;
  for (int b = 0; b < blocks; ++b)
    for (bool tracing : {b % 2 == 0, b % 2 != 0})  // alternate which goes first
      for (int s = 0; s < per_block; ++s) (tracing ? t_on : t_off).push_back(run(tracing));

  const double m_off = median(t_off), m_on = median(t_on);
  const size_t events = recorder.events(trace::Thread::compute).size() + recorder.events(trace::Thread::comm).size();
  const double per_step = static_cast<double>(events) / static_cast<double>(traced);
  const double cost_ns = ns_per_event();
  std::printf("trace overhead, %d interleaved blocks of %d steps each way, batch %d, 1 thread + communication thread:\n",
              blocks, per_block, batch);
  std::printf("  median step: %.3f ms tracing off, %.3f ms on: ratio on/off %.4f\n", m_off * 1e3, m_on * 1e3,
              m_on / m_off);
  std::printf("  recording: %.1f events per step x %.1f ns (clock read + record) = %.2f us = %.4f%% of the step\n",
              per_step, cost_ns, per_step * cost_ns / 1e3, 100 * per_step * cost_ns * 1e-9 / m_off);
  std::printf("  events dropped: %llu\n", static_cast<unsigned long long>(recorder.dropped()));
  return 0;
}
