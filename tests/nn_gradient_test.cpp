// The whole network's analytic gradient against central finite differences.
// Dropout is off (p = 0) so the loss is a deterministic function of the
// parameters; ReLU / max-pool kinks are avoided by comparing only where the
// two-sided difference is stable.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "nn/cnn.h"
#include "nn_test_util.h"

using ddp::nn::Cnn;

namespace {

using nn_test::fill_batch;

}  // namespace

TEST(CnnGradient, MatchesFiniteDifferencesForEveryParameterTensor) {
  Cnn net(0.f);
  net.init(7);
  const int n = 4;
  fill_batch(net, n, 11);
  net.forward(n, true);
  net.backward();
  const std::vector<float> analytic(net.grads(), net.grads() + Cnn::num_params());

  std::mt19937 pick(3);
  for (const auto& spec : Cnn::param_specs()) {
    int checked = 0, agreed = 0;
    for (int trial = 0; trial < 12; ++trial) {
      const size_t i = spec.offset + pick() % spec.count;
      float* w = net.params() + i;
      const float saved = *w;
      const float h = 1e-2f * std::max(1.f, std::fabs(saved));
      *w = saved + h;
      const double lp = net.forward(n, true).loss;
      *w = saved - h;
      const double lm = net.forward(n, true).loss;
      *w = saved;
      const double numeric = (lp - lm) / (2 * h);
      const double a = analytic[i];
      ++checked;
      if (std::fabs(numeric - a) <= 2e-3 + 2e-2 * std::max(std::fabs(numeric), std::fabs(a))) ++agreed;
      else ADD_FAILURE() << spec.name << "[" << i - spec.offset << "]: analytic " << a << " numeric " << numeric;
    }
    EXPECT_EQ(agreed, checked) << spec.name;
  }
}

TEST(CnnGradient, GradReadyCoversTheBufferLastLayerFirst) {
  Cnn net(0.5f);
  net.init(1);
  fill_batch(net, 8, 2);
  net.forward(8, true, 99);
  size_t expected_end = Cnn::num_params();
  net.backward([&](size_t offset, size_t count) {
    EXPECT_EQ(offset + count, expected_end);
    expected_end = offset;
  });
  EXPECT_EQ(expected_end, 0u);
}
