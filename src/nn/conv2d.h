// Conv2d(in_c, out_c, 3x3, stride 1, padding 1) with an optional fused ReLU
// (a post-op: free in the forward pass). Backward computes the weight and
// bias gradients, and the input gradient only when asked (conv1 needs none).
#pragma once
#include "nn/onednn.h"
#include "nn/param.h"

namespace ddp::nn {

class Conv2d {
 public:
  // src: [n, in_c, h, w] in any layout. diff_src: where the input gradient
  // goes (same dims), or an empty memory for none.
  Conv2d(const Runtime& rt, const memory& src, const memory& diff_src, int out_c, ParamView weight,
         ParamView bias, bool fuse_relu);

  void forward(const Runtime& rt) const;
  // Writes weight.grad and bias.grad (plain layout).
  void backward_weights(const Runtime& rt) const;
  void backward_data(const Runtime& rt) const;  // no-op without diff_src

  const memory& dst() const { return dst_; }            // [n, out_c, h, w]
  // Same layout as dst, and the SAME memory: writing the gradient of dst
  // overwrites dst, which backward never reads again.
  const memory& diff_dst() const { return diff_dst_; }
  double flops_forward() const { return flops_; }      // per call

 private:
  Bridge src_, weights_;
  memory dst_, diff_dst_;
  Step fwd_;
  Bridge bw_src_, bw_diff_dst_, bw_diff_weights_;
  Step bwd_weights_;
  Bridge bd_weights_, bd_diff_dst_, bd_diff_src_;
  Step bwd_data_;
  double flops_ = 0;
};

}  // namespace ddp::nn
