// SGD with momentum, PyTorch semantics (dampening 0, no Nesterov, no weight
// decay): v = momentum * v + g; w -= lr * v. One loop over the flat buffers.
#pragma once
#include <cstddef>
#include <vector>

namespace ddp::optim {

class Sgd {
 public:
  Sgd(size_t count, float momentum = 0.9f) : momentum_(momentum), velocity_(count, 0.f) {}

  void step(float* params, const float* grads, float lr);

  std::vector<float>& velocity() { return velocity_; }  // [count]; saved in checkpoints
  float momentum() const { return momentum_; }

 private:
  float momentum_;
  std::vector<float> velocity_;
};

}  // namespace ddp::optim
