// Helpers for the tests of src/nn.
#pragma once
#include <cstdint>
#include <random>

#include "nn/cnn.h"

namespace nn_test {

// Fills the network's input with n seeded N(0, 1) images and n random labels.
inline void fill_batch(ddp::nn::Cnn& net, int n, uint64_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> pix(0.f, 1.f);
  float* x = net.input(n);
  for (int i = 0; i < n * 784; ++i) x[i] = pix(gen);
  int32_t* y = net.labels(n);
  for (int i = 0; i < n; ++i) y[i] = static_cast<int32_t>(gen() % 10);
}

}  // namespace nn_test
