// The CNN of the spec, on oneDNN:
//
//   input [n, 1, 28, 28]
//   conv1 3x3 1->32, pad 1, ReLU -> maxpool 2   [n, 32, 14, 14]
//   conv2 3x3 32->64, pad 1, ReLU -> maxpool 2  [n, 64, 7, 7]
//   flatten -> fc1 3136->128, ReLU -> dropout -> fc2 128->10 -> softmax CE
//
// All parameters live in one flat buffer and all gradients in another, in
// PyTorch's order and layouts; the layers hold views into them. Everything
// that depends on the batch size (primitives, activations) is built once
// per batch size, on first use, and reused.
//
// In bf16 (nn/precision.h) the same buffers hold the f32 master parameters
// and gradients; the bf16 weights are made from them by one conversion per
// weight tensor and pass that needs it, when that pass starts: once a step,
// never per primitive (conv1: one, for forward; fc1: one, which its
// backward-data reuses; conv2: one for forward and one for backward-data,
// whose kernels want another blocking). conv1's input is converted once a
// step too.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "nn/onednn.h"
#include "common/trace.h"
#include "nn/param.h"
#include "nn/precision.h"
#include "nn/softmax_xent.h"

namespace ddp::nn {

struct Batch;  // the primitives and activations for one batch size (cnn.cpp)

// Per-layer time accumulators, for the time split of a step.
enum Layer { kConv1, kPool1, kConv2, kPool2, kFc1, kDropout, kFc2, kLoss, kNumLayers };
const char* layer_name(int layer);
struct LayerTimes {
  std::array<double, kNumLayers> forward_s{}, backward_s{};
  void clear() { *this = LayerTimes{}; }
};

class Cnn {
 public:
  // grad_extra: floats appended to the gradient buffer after the model's
  // own, for whoever all-reduces it to carry along (the trainer's stop flag).
  // bf16 where oneDNN has no bf16 kernels (no AVX-512) throws UserError
  // when the first batch is built (check_precision_supported says so before).
  explicit Cnn(float dropout = 0.5f, size_t grad_extra = 0, Precision precision = Precision::fp32);
  ~Cnn();
  Cnn(const Cnn&) = delete;
  Cnn& operator=(const Cnn&) = delete;

  static const std::vector<ParamSpec>& param_specs();
  static size_t num_params();
  static double flops_per_sample();  // forward + backward, as computed (conv1 has no input gradient)

  float* params() { return params_.data(); }  // [num_params]
  float* grads() { return grads_.data(); }    // [num_params + grad_extra]
  const float* params() const { return params_.data(); }
  const float* grads() const { return grads_.data(); }

  // PyTorch's default initialisation (uniform +-1/sqrt(fan_in) for every
  // weight and bias), from `seed`.
  void init(uint64_t seed);

  // The batch's input, to be filled before forward(): [n, 1, 28, 28] and [n].
  float* input(int n);
  int32_t* labels(int n);

  // Forward pass of a batch of n (train: dropout on, with its mask drawn from
  // dropout_seed). Returns the mean loss and the number correct.
  LossResult forward(int n, bool train, uint64_t dropout_seed = 0);

  // Backward pass of the last forward (which must have been train = true).
  // Overwrites grads() with the gradient of the mean loss. grad_ready(offset,
  // count) is called as soon as each layer's gradients are final, last layer
  // first, so their all-reduce can start while backward goes on.
  using GradReady = std::function<void(size_t offset, size_t count)>;
  void backward(const GradReady& grad_ready = nullptr);

  LayerTimes& times() { return times_; }
  Precision precision() const { return precision_; }

  // The oneDNN implementation of every primitive for batch size n
  // ("conv2.forward" -> "brgconv:avx512_core_amx_bf16"), building the batch
  // if needed; for the results file and tests.
  Implementations implementations(int n);

  // Records each layer's forward (of training batches only: an evaluation
  // is one event of the trainer's) and backward into `trace`'s compute
  // thread; null (the default) records nothing.
  void set_trace(trace::Recorder* trace) { trace_ = trace; }

 private:
  Batch& batch(int n);

  Runtime rt_;
  float dropout_;
  Precision precision_;
  AlignedVector<float> params_, grads_;
  std::map<int, std::unique_ptr<Batch>> batches_;
  Batch* last_ = nullptr;
  LayerTimes times_;
  trace::Recorder* trace_ = nullptr;
};

// Sets the number of compute threads of this process (oneDNN's OpenMP).
void set_compute_threads(int threads);

}  // namespace ddp::nn
