// Dropout(p) with PyTorch semantics: in training each element is zeroed with
// probability p and the survivors are scaled by 1/(1-p); in evaluation it is
// the identity. The mask is a pure function of a per-step seed, so a step
// can be replayed exactly (resume, tests).
#pragma once
#include <cstdint>
#include <vector>

#include "nn/onednn.h"

namespace ddp::nn {

class Dropout {
 public:
  // src, diff_src: [n, features], plain (Linear's dst and diff_dst).
  Dropout(const Runtime& rt, const memory& src, const memory& diff_src, float p);

  void forward(bool train, uint64_t seed);
  void backward() const;

  const memory& dst() const { return dst_; }            // [n, features], plain
  const memory& diff_dst() const { return diff_dst_; }  // [n, features], plain

 private:
  float p_;
  size_t count_;
  const float* src_;
  float* diff_src_;
  memory dst_, diff_dst_;
  std::vector<float> scale_;  // [n * features]: 0 or 1/(1-p); all 1 in evaluation
};

}  // namespace ddp::nn
