// Google Benchmark micro-benchmarks of the layers at batch 64 on one
// thread, with their FLOP rate ("FLOPS" counter), the whole training step,
// the bf16 gradient conversions, and PowerSGD's computation per step.
//
//   build/bench/layers_bench [--benchmark_filter=conv2]
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "dist/bf16.h"
#include "dist/bucket_layout.h"
#include "dist/powersgd.h"
#include "nn/cnn.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "optim/sgd.h"

using namespace ddp;
using namespace ddp::nn;

namespace {

constexpr int kBatch = 64;

void fill(std::vector<float>& v, float scale) {
  std::mt19937 g(1);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (float& x : v) x = u(g);
}

void fill(const memory& m) {
  auto* p = static_cast<float*>(m.get_data_handle());
  std::mt19937 g(2);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (size_t i = 0; i < m.get_desc().get_size() / sizeof(float); ++i) p[i] = u(g);
}

// A convolution of the network, with its input in the layout the network
// feeds it (conv1: the plain image; conv2: pool1's blocked output).
struct ConvCase {
  Runtime rt;
  std::vector<float> w, b, dw, db;
  memory src, diff_src;
  Conv2d conv;
  ConvCase(int in_c, int out_c, int hw, tag src_tag, bool input_grad)
      : w(static_cast<size_t>(out_c * in_c * 9)),
        b(static_cast<size_t>(out_c)),
        dw(w.size()),
        db(b.size()),
        src(plain_desc({kBatch, in_c, hw, hw}, src_tag), rt.engine),
        diff_src(input_grad ? memory(plain_desc({kBatch, in_c, hw, hw}, src_tag), rt.engine) : memory()),
        conv(rt, src, diff_src, out_c, {w.data(), dw.data()}, {b.data(), db.data()}, true) {
    fill(w, 0.1f);
    fill(src);
    fill(conv.diff_dst());
  }
};

void set_flops(benchmark::State& state, double flops_per_call) {
  state.counters["FLOPS"] =
      benchmark::Counter(flops_per_call * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_Conv1Forward(benchmark::State& state) {
  set_compute_threads(1);
  ConvCase c(1, 32, 28, tag::nchw, false);
  for (auto _ : state) c.conv.forward(c.rt);
  set_flops(state, c.conv.flops_forward());
}
void BM_Conv1BackwardWeights(benchmark::State& state) {
  set_compute_threads(1);
  ConvCase c(1, 32, 28, tag::nchw, false);
  c.conv.forward(c.rt);
  for (auto _ : state) c.conv.backward_weights(c.rt);
  set_flops(state, c.conv.flops_forward());
}
void BM_Conv2Forward(benchmark::State& state) {
  set_compute_threads(1);
  ConvCase c(32, 64, 14, tag::nChw16c, true);
  for (auto _ : state) c.conv.forward(c.rt);
  set_flops(state, c.conv.flops_forward());
}
void BM_Conv2BackwardWeights(benchmark::State& state) {
  set_compute_threads(1);
  ConvCase c(32, 64, 14, tag::nChw16c, true);
  c.conv.forward(c.rt);
  for (auto _ : state) c.conv.backward_weights(c.rt);
  set_flops(state, c.conv.flops_forward());
}
void BM_Conv2BackwardData(benchmark::State& state) {
  set_compute_threads(1);
  ConvCase c(32, 64, 14, tag::nChw16c, true);
  c.conv.forward(c.rt);
  for (auto _ : state) c.conv.backward_data(c.rt);
  set_flops(state, c.conv.flops_forward());
}

struct FcCase {
  Runtime rt;
  std::vector<float> w, b, dw, db;
  memory src, diff_src;
  Linear fc;
  FcCase()
      : w(128 * 3136),
        b(128),
        dw(w.size()),
        db(b.size()),
        src(plain_desc({kBatch, 64, 7, 7}, tag::nChw16c), rt.engine),
        diff_src(plain_desc({kBatch, 64, 7, 7}, tag::nChw16c), rt.engine),
        fc(rt, src, diff_src, 128, {w.data(), dw.data()}, {b.data(), db.data()}, true) {
    fill(w, 0.02f);
    fill(src);
    fill(fc.diff_dst());
  }
};

void BM_Fc1Forward(benchmark::State& state) {
  set_compute_threads(1);
  FcCase c;
  for (auto _ : state) c.fc.forward(c.rt);
  set_flops(state, c.fc.flops_forward());
}
void BM_Fc1Backward(benchmark::State& state) {
  set_compute_threads(1);
  FcCase c;
  c.fc.forward(c.rt);
  for (auto _ : state) {
    c.fc.backward_weights(c.rt);
    c.fc.backward_data(c.rt);
  }
  set_flops(state, 2 * c.fc.flops_forward());
}

// The whole step as the trainer runs it, minus the data copy.
void BM_TrainingStep(benchmark::State& state) {
  set_compute_threads(static_cast<int>(state.range(0)));
  Cnn net(0.5f);
  net.init(1);
  optim::Sgd sgd(Cnn::num_params(), 0.9f);
  std::vector<float> x(static_cast<size_t>(kBatch) * 784);
  fill(x, 1.f);
  std::copy(x.begin(), x.end(), net.input(kBatch));
  for (int i = 0; i < kBatch; ++i) net.labels(kBatch)[i] = i % 10;
  uint64_t seed = 0;
  for (auto _ : state) {
    net.forward(kBatch, true, ++seed);
    net.backward();
    sgd.step(net.params(), net.grads(), 0.01f);
  }
  set_flops(state, Cnn::flops_per_sample() * kBatch);
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * kBatch,
                                                   benchmark::Counter::kIsRate);
}

// The bf16 conversions of --grad-compression bf16, over the whole gradient.
void BM_FloatsToBf16(benchmark::State& state) {
  std::vector<float> g(Cnn::num_params());
  fill(g, 1.f);
  std::vector<uint16_t> h(g.size());
  for (auto _ : state) {
    dist::floats_to_bf16(g.data(), h.data(), g.size());
    benchmark::DoNotOptimize(h.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * g.size() * 6));
}
void BM_Bf16Sum(benchmark::State& state) {
  std::vector<uint16_t> a(Cnn::num_params(), 0x3f80), b(a.size(), 0x3c00);
  for (auto _ : state) {
    dist::bf16_sum(a.data(), a.data(), b.data(), a.size());
    benchmark::DoNotOptimize(a.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * a.size() * 6));
}

// One compressed step of --grad-compression powersgd over the whole
// gradient (64 KiB buckets, as the trainer cuts them), without the
// communication: error feedback, P = M Q, orthogonalisation, Q = M^T P,
// P Q^T and the residuals. Arg: the rank.
void BM_PowerSgdStep(benchmark::State& state) {
  dist::PowerSgdOptions o;
  o.matrix_approximation_rank = static_cast<int>(state.range(0));
  o.start_step = 0;
  std::vector<size_t> segments;
  for (const auto& spec : Cnn::param_specs()) {
    const auto rows = static_cast<size_t>(spec.shape.at(0));
    o.matrices.push_back({spec.offset, rows, spec.count / rows});
    if (spec.name.ends_with(".weight")) segments.push_back(spec.offset);
  }
  const size_t count = Cnn::num_params() + 1;  // + the stop flag
  segments.push_back(Cnn::num_params());
  std::vector<float> g(count);
  fill(g, 0.01f);
  const auto buckets = dist::bucket_layout(count, 64 * 1024, segments);
  dist::PowerSgd psgd(g.data(), count, buckets, o);
  dist::SilentCommunicator comm(2);  // all-reduces return at once: what is timed is PowerSGD's own work
  for (auto _ : state) {
    for (size_t b = 0; b < buckets.size(); ++b) psgd.reduce_bucket(b, comm);
    psgd.end_step();
    benchmark::DoNotOptimize(g.data());
  }
}

}  // namespace

BENCHMARK(BM_Conv1Forward)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Conv1BackwardWeights)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Conv2Forward)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Conv2BackwardWeights)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Conv2BackwardData)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Fc1Forward)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Fc1Backward)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_TrainingStep)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_FloatsToBf16)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Bf16Sum)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PowerSgdStep)->Arg(1)->Arg(2)->Arg(4)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
