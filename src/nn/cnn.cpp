#include "nn/cnn.h"

#include <omp.h>

#include <chrono>
#include <cmath>

#include "common/error.h"
#include "common/rng.h"
#include "nn/conv2d.h"
#include "nn/dropout.h"
#include "nn/linear.h"
#include "nn/maxpool2d.h"
#include "nn/relu.h"

namespace ddp::nn {

namespace {

std::vector<ParamSpec> make_specs() {
  std::vector<ParamSpec> specs = {
      {"conv1.weight", {32, 1, 3, 3}, 0, 0, 9},         {"conv1.bias", {32}, 0, 0, 9},
      {"conv2.weight", {64, 32, 3, 3}, 0, 0, 288},      {"conv2.bias", {64}, 0, 0, 288},
      {"fc1.weight", {128, 3136}, 0, 0, 3136},          {"fc1.bias", {128}, 0, 0, 3136},
      {"fc2.weight", {10, 128}, 0, 0, 128},             {"fc2.bias", {10}, 0, 0, 128},
  };
  size_t offset = 0;
  for (auto& s : specs) {
    s.count = 1;
    for (long d : s.shape) s.count *= static_cast<size_t>(d);
    s.offset = offset;
    offset += s.count;
  }
  return specs;
}

enum Param { kConv1W, kConv1B, kConv2W, kConv2B, kFc1W, kFc1B, kFc2W, kFc2B };

using Clock = std::chrono::steady_clock;

// Adds the time since `t` to `acc` and restarts `t`; with a recorder, the
// same interval is the event (kind, layer) of the compute thread.
inline void lap(Clock::time_point& t, double& acc, trace::Recorder* tr, trace::Kind kind, int layer) {
  const auto now = Clock::now();
  acc += std::chrono::duration<double>(now - t).count();
  if (tr) tr->record(trace::Thread::compute, kind, trace::ns(t), trace::ns(now), layer);
  t = now;
}

}  // namespace

const char* layer_name(int layer) {
  static const char* names[kNumLayers] = {"conv1", "pool1", "conv2", "pool2", "fc1", "dropout", "fc2", "loss"};
  return names[layer];
}

const std::vector<ParamSpec>& Cnn::param_specs() {
  static const std::vector<ParamSpec> specs = make_specs();
  return specs;
}

size_t Cnn::num_params() {
  const auto& last = param_specs().back();
  return last.offset + last.count;
}

double Cnn::flops_per_sample() {
  const double conv1 = 2.0 * 32 * 28 * 28 * 1 * 9, conv2 = 2.0 * 64 * 14 * 14 * 32 * 9;
  const double fc1 = 2.0 * 128 * 3136, fc2 = 2.0 * 10 * 128;
  // forward once; backward computes weight gradients for all and input
  // gradients for all but conv1.
  return (conv1 + conv2 + fc1 + fc2) + (conv1 + 2 * conv2 + 2 * fc1 + 2 * fc2);
}

// Everything that depends on the batch size n. Members are declared in
// forward order; each layer is built on the memories of the one before.
struct Batch {
  memory input, diff_input;  // [n, 1, 28, 28] nchw; conv1 needs no input gradient
  std::vector<int32_t> labels;
  Conv2d conv1;
  MaxPool2d pool1;
  ReluBackward relu1;  // see below
  Conv2d conv2;
  MaxPool2d pool2;
  ReluBackward relu2;
  Linear fc1;
  ReluBackward relu3;
  Dropout dropout;
  Linear fc2;
  SoftmaxCrossEntropy loss;

  // ReLU is fused into conv1 / conv2, and its backward is done after the
  // pool's output, not before: maxpool(relu(x)) == relu(maxpool(x)) with the
  // same winners, so the gradients are identical, and the backward ReLU
  // touches a quarter of the elements.
  //
  // `act` is the type of everything from conv1 to fc1 (f32 or bf16); the
  // input stays f32 (conv1 converts it), and from the dropout on it is f32
  // again: fc2 (10x128, 0.1% of the FLOPs) costs nothing in f32 and keeps
  // the logits and their gradient exact, so no conversion sits between it
  // and the loss.
  Batch(const Runtime& rt, int n, ParamView p[8], float p_drop, dt act)
      : input(plain_desc({n, 1, 28, 28}, tag::nchw), rt.engine),
        labels(n),
        conv1(rt, input, memory(), 32, p[kConv1W], p[kConv1B], true, act),
        pool1(rt, conv1.dst(), conv1.diff_dst()),
        relu1(rt, pool1.dst(), pool1.diff_dst()),
        conv2(rt, pool1.dst(), pool1.diff_dst(), 64, p[kConv2W], p[kConv2B], true, act),
        pool2(rt, conv2.dst(), conv2.diff_dst()),
        relu2(rt, pool2.dst(), pool2.diff_dst()),
        fc1(rt, pool2.dst(), pool2.diff_dst(), 128, p[kFc1W], p[kFc1B], true, act),
        relu3(rt, fc1.dst(), fc1.diff_dst()),
        dropout(rt, fc1.dst(), fc1.diff_dst(), p_drop),
        fc2(rt, dropout.dst(), dropout.diff_dst(), 10, p[kFc2W], p[kFc2B], false),
        loss(fc2.dst(), fc2.diff_dst()) {}
};

Cnn::Cnn(float dropout, size_t grad_extra, Precision precision)
    : dropout_(dropout),
      precision_(precision),
      params_(num_params(), 0.f),
      grads_(num_params() + grad_extra, 0.f) {}

Cnn::~Cnn() = default;

void Cnn::init(uint64_t seed) {
  const auto& specs = param_specs();
  for (size_t i = 0; i < specs.size(); ++i) {
    SplitMix64 rng(mix_seed(seed, i));
    const float bound = 1.f / std::sqrt(static_cast<float>(specs[i].fan_in));
    float* p = params_.data() + specs[i].offset;
    for (size_t j = 0; j < specs[i].count; ++j) p[j] = (2.f * rng.uniform_float() - 1.f) * bound;
  }
}

Batch& Cnn::batch(int n) {
  DDP_ASSERT(n > 0, "batch size must be positive");
  auto& slot = batches_[n];
  if (!slot) {
    ParamView views[8];
    const auto& specs = param_specs();
    for (int i = 0; i < 8; ++i) views[i] = {params_.data() + specs[i].offset, grads_.data() + specs[i].offset};
    try {
      slot = std::make_unique<Batch>(rt_, n, views, dropout_, precision_ == Precision::bf16 ? dt::bf16 : dt::f32);
    } catch (const dnnl::error& e) {
      batches_.erase(n);
      if (precision_ != Precision::bf16) throw;
      throw UserError(std::string("oneDNN has no bf16 kernels for this CPU (instruction set ") + cpu_bf16().isa +
                          "): " + e.what(),
                      "use --precision fp32");
    }
  }
  return *slot;
}

Implementations Cnn::implementations(int n) {
  const Batch& b = batch(n);
  Implementations out;
  b.conv1.implementations("conv1", out);
  b.pool1.implementations("pool1", out);
  out.emplace_back("relu1.backward", b.relu1.implementation());
  b.conv2.implementations("conv2", out);
  b.pool2.implementations("pool2", out);
  out.emplace_back("relu2.backward", b.relu2.implementation());
  b.fc1.implementations("fc1", out);
  out.emplace_back("relu3.backward", b.relu3.implementation());
  b.fc2.implementations("fc2", out);
  return out;
}

float* Cnn::input(int n) { return static_cast<float*>(batch(n).input.get_data_handle()); }
int32_t* Cnn::labels(int n) { return batch(n).labels.data(); }

LossResult Cnn::forward(int n, bool train, uint64_t dropout_seed) {
  Batch& b = batch(n);
  last_ = train ? &b : nullptr;
  trace::Recorder* const tr = train ? trace_ : nullptr;
  auto& f = times_.forward_s;
  auto lap_f = [&](Clock::time_point& t, int layer) { lap(t, f[layer], tr, trace::Kind::forward, layer); };
  auto t = Clock::now();
  b.conv1.forward(rt_);                     lap_f(t, kConv1);
  b.pool1.forward(rt_);                     lap_f(t, kPool1);
  b.conv2.forward(rt_);                     lap_f(t, kConv2);
  b.pool2.forward(rt_);                     lap_f(t, kPool2);
  b.fc1.forward(rt_);                       lap_f(t, kFc1);
  b.dropout.forward(train, dropout_seed);   lap_f(t, kDropout);
  b.fc2.forward(rt_);                       lap_f(t, kFc2);
  const LossResult r = b.loss.forward(b.labels.data());
  lap_f(t, kLoss);
  return r;
}

void Cnn::backward(const GradReady& grad_ready) {
  DDP_ASSERT(last_ != nullptr, "backward() needs a preceding forward(train = true)");
  Batch& b = *last_;
  const auto& specs = param_specs();
  // Reports the gradients of parameters [first, last] (a layer's weight and bias) as final.
  auto ready = [&](int first, int last) {
    if (grad_ready) grad_ready(specs[first].offset, specs[last].offset + specs[last].count - specs[first].offset);
  };
  auto& g = times_.backward_s;
  auto lap_b = [&](Clock::time_point& t, int layer) { lap(t, g[layer], trace_, trace::Kind::backward, layer); };
  auto t = Clock::now();
  b.loss.backward();                                      lap_b(t, kLoss);
  // Weight gradients first in each layer, so their all-reduce starts before
  // the (longer) input-gradient computation.
  b.fc2.backward_weights(rt_);  ready(kFc2W, kFc2B);
  b.fc2.backward_data(rt_);                               lap_b(t, kFc2);
  b.dropout.backward();                                   lap_b(t, kDropout);
  b.relu3.backward(rt_);
  b.fc1.backward_weights(rt_);  ready(kFc1W, kFc1B);
  b.fc1.backward_data(rt_);                               lap_b(t, kFc1);
  b.relu2.backward(rt_);
  b.pool2.backward(rt_);                                  lap_b(t, kPool2);
  b.conv2.backward_weights(rt_);  ready(kConv2W, kConv2B);
  b.conv2.backward_data(rt_);                             lap_b(t, kConv2);
  b.relu1.backward(rt_);
  b.pool1.backward(rt_);                                  lap_b(t, kPool1);
  b.conv1.backward_weights(rt_);  ready(kConv1W, kConv1B);
  lap_b(t, kConv1);
}

void set_compute_threads(int threads) { omp_set_num_threads(threads); }

}  // namespace ddp::nn
