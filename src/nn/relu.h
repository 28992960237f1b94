// The backward half of a ReLU whose forward was fused into the layer before
// it: diff *= (y > 0), in place, computed from the ReLU's output y (f32 or
// bf16, as y is).
#pragma once
#include "nn/onednn.h"

namespace ddp::nn {

class ReluBackward {
 public:
  // y: the ReLU's output; diff: the gradient with respect to y, same desc,
  // turned in place into the gradient with respect to the ReLU's input.
  ReluBackward(const Runtime& rt, const memory& y, const memory& diff);
  void backward(const Runtime& rt) const { bwd_.run(rt); }
  const std::string& implementation() const { return impl_; }

 private:
  Step bwd_;
  std::string impl_;
};

}  // namespace ddp::nn
