// Linear(in, out) (PyTorch's nn.Linear: y = x W^T + b, W is [out, in]) with
// an optional fused ReLU. A 4-D input [n, c, h, w] is flattened in C, H, W
// order (nn.Flatten), which oneDNN does for free by viewing W as
// [out, c, h, w] in OIHW. `type` is the type of src, weights and dst (f32,
// or bf16 for mixed precision); the bias, the parameters and their
// gradients are f32 always.
#pragma once
#include "nn/onednn.h"
#include "nn/param.h"

namespace ddp::nn {

class Linear {
 public:
  // src: [n, in] or [n, c, h, w] in any layout; diff_src: same desc as src,
  // or empty for none.
  Linear(const Runtime& rt, const memory& src, const memory& diff_src, int out, ParamView weight, ParamView bias,
         bool fuse_relu, dt type = dt::f32);

  void forward(const Runtime& rt) const;
  void backward_weights(const Runtime& rt) const;
  void backward_data(const Runtime& rt) const;

  const memory& dst() const { return dst_; }            // [n, out], plain
  const memory& diff_dst() const { return diff_dst_; }  // [n, out], plain
  double flops_forward() const { return flops_; }
  // Appends "<name>.forward", ".backward_weights", ".backward_data".
  void implementations(const std::string& name, Implementations& out) const;

 private:
  Bridge src_, weights_;
  memory dst_, diff_dst_;
  Step fwd_;
  Bridge bw_src_, bw_diff_weights_;
  Step bwd_weights_;
  Bridge bd_weights_, bd_diff_src_;
  Step bwd_data_;
  double flops_ = 0;
  std::string impl_fwd_, impl_bwd_weights_, impl_bwd_data_;
};

}  // namespace ddp::nn
