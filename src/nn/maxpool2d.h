// MaxPool2d(2): 2x2 windows, stride 2. The forward pass keeps a workspace
// (which element won each window) for the backward pass. Works in the type
// of its source (f32 or bf16: max and its gradient are exact in either).
#pragma once
#include "nn/onednn.h"

namespace ddp::nn {

class MaxPool2d {
 public:
  // src: [n, c, h, w] in the producer's layout; diff_src: same desc as src.
  MaxPool2d(const Runtime& rt, const memory& src, const memory& diff_src);

  void forward(const Runtime& rt) const { fwd_.run(rt); }
  void backward(const Runtime& rt) const { bwd_.run(rt); }  // writes all of diff_src

  const memory& dst() const { return dst_; }            // [n, c, h/2, w/2]
  const memory& diff_dst() const { return diff_dst_; }  // same layout as dst
  void implementations(const std::string& name, Implementations& out) const;  // "<name>.forward", ".backward"

 private:
  memory dst_, diff_dst_, workspace_;
  Step fwd_, bwd_;
  std::string impl_fwd_, impl_bwd_;
};

}  // namespace ddp::nn
