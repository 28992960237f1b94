// MaxPool2d(2): 2x2 windows, stride 2. Works in the type of its source (f32
// or bf16: max and its gradient are exact in either).
//
// It runs on a kernel of our own (maxpool2d.cpp), in both precisions, when
// the layouts allow it (channels in contiguous groups of 16, as in the
// nChw16c and NHWC layouts the convolutions pick) and the CPU has AVX-512:
// oneDNN 2.6's pooling ran at a seventh of what the memory allows here (46%
// of the bf16 step, 29% of the fp32 one). Elsewhere oneDNN's pooling runs,
// whose forward keeps a workspace (which element won each window) for the
// backward pass. Our kernel keeps none: the backward finds each window's
// winner again from the source, which it reads anyway, with oneDNN's rule
// for ties (the first maximum in row-major order), so the outputs and
// gradients are the same as oneDNN's bit for bit.
#pragma once
#include "nn/onednn.h"

namespace ddp::nn {

class MaxPool2d {
 public:
  // src: [n, c, h, w] in the producer's layout; diff_src: same desc as src,
  // and may be src's own memory (the backward reads each window's source
  // before it writes its gradient). src must not change between forward and
  // backward.
  MaxPool2d(const Runtime& rt, const memory& src, const memory& diff_src);

  void forward(const Runtime& rt) const;
  void backward(const Runtime& rt) const;  // writes all of diff_src

  const memory& dst() const { return dst_; }            // [n, c, h/2, w/2]
  const memory& diff_dst() const { return diff_dst_; }  // same layout as dst
  void implementations(const std::string& name, Implementations& out) const;  // "<name>.forward", ".backward"


  // Where a 4-D tensor's element (n, 16 g + i, h, w) is, in elements:
  // n * n + g * group + h * h + w * w + i (for the kernels in maxpool2d.cpp).
  struct Strides {
    memory::dim n = 0, group = 0, h = 0, w = 0;
  };

 private:
  memory src_, diff_src_, dst_, diff_dst_, workspace_;
  Step fwd_, bwd_;  // oneDNN's; empty where our kernel runs
  Strides src_strides_, dst_strides_;
  memory::dims dims_;
  std::string impl_fwd_, impl_bwd_;
  bool bf16_ = false;  // our kernel's element type: bf16, else f32

  template <class T>
  void run_forward() const;
  template <class T>
  void run_backward() const;
};

}  // namespace ddp::nn
