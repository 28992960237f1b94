#include "optim/sgd.h"

namespace ddp::optim {

void Sgd::step(float* __restrict params, const float* __restrict grads, float lr, float grad_scale) {
  float* __restrict v = velocity_.data();
  const size_t n = velocity_.size();
  const float m = momentum_;
#pragma omp simd
  for (size_t i = 0; i < n; ++i) {
    v[i] = m * v[i] + grads[i] * grad_scale;
    params[i] -= lr * v[i];
  }
}

}  // namespace ddp::optim
