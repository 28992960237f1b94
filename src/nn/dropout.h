// Dropout(p) with PyTorch semantics: in training each element is zeroed with
// probability p and the survivors are scaled by 1/(1-p); in evaluation it is
// the identity. The mask is a pure function of a per-step seed, so a step
// can be replayed exactly (resume, tests).
//
// The source may be bf16 (fc1's output under mixed precision): the output
// and its gradient are f32 (fc2 runs in f32), and the gradient passed back
// is rounded to bf16 in the same pass, so the conversions cost no pass of
// their own.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/onednn.h"

namespace ddp::nn {

class Dropout {
 public:
  // src, diff_src: [n, features], plain, f32 or bf16 (Linear's dst and diff_dst).
  Dropout(const Runtime& rt, const memory& src, const memory& diff_src, float p);

  void forward(bool train, uint64_t seed);
  void backward() const;

  const memory& dst() const { return dst_; }            // [n, features], plain, f32
  const memory& diff_dst() const { return diff_dst_; }  // [n, features], plain, f32

 private:
  float p_;
  size_t count_;
  bool bf16_;             // src and diff_src are bf16 (else f32)
  const void* src_;
  void* diff_src_;
  memory dst_, diff_dst_;
  std::vector<float> scale_;  // [n * features]: 0 or 1/(1-p); all 1 in evaluation
};

}  // namespace ddp::nn
