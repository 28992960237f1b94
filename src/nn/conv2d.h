// Conv2d(in_c, out_c, 3x3, stride 1, padding 1) with an optional fused ReLU
// (a post-op: free in the forward pass). Backward computes the weight and
// bias gradients, and the input gradient only when asked (conv1 needs none).
// `type` is the type of src, weights and dst (f32, or bf16 for mixed
// precision); the bias, the parameters and their gradients are f32 always.
#pragma once
#include "nn/onednn.h"
#include "nn/param.h"

namespace ddp::nn {

class Conv2d {
 public:
  // src: [n, in_c, h, w] in any layout. diff_src: where the input gradient
  // goes (same dims), or an empty memory for none.
  Conv2d(const Runtime& rt, const memory& src, const memory& diff_src, int out_c, ParamView weight,
         ParamView bias, bool fuse_relu, dt type = dt::f32);

  // Converts the f32 parameters into the forward's weights (layout and
  // type), once a call, then runs.
  void forward(const Runtime& rt) const;
  // Writes weight.grad and bias.grad (plain layout).
  void backward_weights(const Runtime& rt) const;
  // Converts the f32 parameters into the backward-data weights when those
  // differ from the forward's, then runs. A no-op without diff_src.
  void backward_data(const Runtime& rt) const;

  const memory& dst() const { return dst_; }            // [n, out_c, h, w]
  // Same layout as dst, and the SAME memory: writing the gradient of dst
  // overwrites dst, which backward never reads again.
  const memory& diff_dst() const { return diff_dst_; }
  double flops_forward() const { return flops_; }      // per call
  // Appends "<name>.forward", ".backward_weights", ".backward_data".
  void implementations(const std::string& name, Implementations& out) const;

 private:
  Bridge src_, weights_;
  memory dst_, diff_dst_;
  Step fwd_;
  Bridge bw_src_, bw_diff_dst_, bw_diff_weights_;
  Step bwd_weights_;
  Bridge bd_weights_, bd_diff_dst_, bd_diff_src_;
  Step bwd_data_;
  double flops_ = 0;
  std::string impl_fwd_, impl_bwd_weights_, impl_bwd_data_;
};

}  // namespace ddp::nn
