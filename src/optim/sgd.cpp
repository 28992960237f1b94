#include "optim/sgd.h"

#include "common/error.h"

namespace ddp::optim {

void Sgd::step(float* __restrict params, const float* __restrict grads, float lr, float grad_scale, size_t begin,
               size_t end) {
  DDP_ASSERT(begin <= end && end <= velocity_.size(), "Sgd::step: range outside the parameters");
  float* __restrict v = velocity_.data();
  const float m = momentum_;
#pragma omp simd
  for (size_t i = begin; i < end; ++i) {
    v[i] = m * v[i] + grads[i] * grad_scale;
    params[i] -= lr * v[i];
  }
}

}  // namespace ddp::optim
