// SGD with momentum, PyTorch semantics (dampening 0, no Nesterov, no weight
// decay): v = momentum * v + g; w -= lr * v. One loop over the flat buffers.
// g = grads * grad_scale: data-parallel training passes the SUM of the
// ranks' gradients and 1/world_size (dist::GradSync::average_scale), so the
// average costs no extra pass; the product is the same float as averaging
// first.
#pragma once
#include <cstddef>
#include <vector>

namespace ddp::optim {

class Sgd {
 public:
  Sgd(size_t count, float momentum = 0.9f) : momentum_(momentum), velocity_(count, 0.f) {}

  void step(float* params, const float* grads, float lr, float grad_scale = 1.0f) {
    step(params, grads, lr, grad_scale, 0, velocity_.size());
  }
  // Only elements [begin, end) of params, grads and the velocity: the step
  // of one gradient bucket, as soon as its all-reduce is done.
  void step(float* params, const float* grads, float lr, float grad_scale, size_t begin, size_t end);

  std::vector<float>& velocity() { return velocity_; }  // [count]; saved in checkpoints
  float momentum() const { return momentum_; }

 private:
  float momentum_;
  std::vector<float> velocity_;
};

}  // namespace ddp::optim
