// Mixed precision (nn/precision.h): bf16 gradients against the fp32
// gradients of the same network, parameters and batch; the kernels oneDNN
// picks; and that a step is a pure function of its inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/bf16.h"
#include "nn/cnn.h"
#include "nn_test_util.h"

using ddp::nn::Cnn;
using ddp::nn::Precision;

namespace {

using nn_test::fill_batch;

bool native_bf16() { return ddp::nn::cpu_bf16().support == ddp::nn::Bf16Support::native; }

float round_to_bf16(float x) { return ddp::bf16_to_float(ddp::float_to_bf16(x)); }

// The gradient of one batch (dropout off) at PyTorch's initialisation.
// rounded_inputs: the input and the parameters rounded to bf16 first.
std::vector<float> gradients(Precision precision, int n, double* loss, bool rounded_inputs = false) {
  Cnn net(0.f, 0, precision);
  net.init(7);
  fill_batch(net, n, 11);
  if (rounded_inputs) {
    for (size_t i = 0; i < Cnn::num_params(); ++i) net.params()[i] = round_to_bf16(net.params()[i]);
    float* x = net.input(n);
    for (int i = 0; i < n * 784; ++i) x[i] = round_to_bf16(x[i]);
  }
  *loss = net.forward(n, true).loss;
  net.backward();
  return {net.grads(), net.grads() + Cnn::num_params()};
}

// || a - b || / || b || over one parameter tensor.
double relative_error(const std::vector<float>& a, const std::vector<float>& b, const ddp::nn::ParamSpec& spec) {
  double diff = 0, norm = 0;
  for (size_t i = spec.offset; i < spec.offset + spec.count; ++i) {
    diff += (a[i] - b[i]) * static_cast<double>(a[i] - b[i]);
    norm += b[i] * static_cast<double>(b[i]);
  }
  return norm > 0 ? std::sqrt(diff / norm) : INFINITY;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b, const ddp::nn::ParamSpec& spec) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = spec.offset; i < spec.offset + spec.count; ++i) {
    dot += a[i] * static_cast<double>(b[i]);
    na += a[i] * static_cast<double>(a[i]);
    nb += b[i] * static_cast<double>(b[i]);
  }
  return dot / std::sqrt(na * nb);
}

}  // namespace

// The tolerance, and why it is percents: bf16 keeps 8 significant bits, so
// each rounding is off by up to 2^-9 (0.2%). At initialisation the early
// layers' gradients are small sums of large terms of both signs, so 0.2% of
// each term is percents of the sum. How many, the test measures rather than
// assumes: an fp32 run whose input and parameters alone are rounded to bf16
// (the first of the roundings bf16 makes) moves each gradient tensor by E0,
// 0.03-11% of its norm here (most in conv1, least in fc2's bias). The bf16
// run rounds every activation and input gradient as well; measured, it is
// off by 0.8-2.5 E0. So each tensor must be within 3 E0 + 0.2% of the fp32
// gradient, and within 25% and a cosine of 0.97 absolutely: a real error
// (a wrong layout, a missing conversion, a mis-scaled gradient) is off by
// 50-150%.
TEST(CnnBf16, GradientsMatchTheFp32GradientsOfTheSameBatchPerTensor) {
  if (ddp::nn::cpu_bf16().support == ddp::nn::Bf16Support::unsupported) GTEST_SKIP() << "no AVX-512";
  const int n = 64;
  double loss32 = 0, loss16 = 0, loss_rounded = 0;
  const auto g32 = gradients(Precision::fp32, n, &loss32);
  const auto g16 = gradients(Precision::bf16, n, &loss16);
  const auto g_rounded = gradients(Precision::fp32, n, &loss_rounded, true);
  EXPECT_NEAR(loss16, loss32, 0.01 * loss32);
  for (const auto& spec : Cnn::param_specs()) {
    const double e16 = relative_error(g16, g32, spec), e0 = relative_error(g_rounded, g32, spec);
    const double cos = cosine(g16, g32, spec);
    std::printf("[ bf16     ] %-13s relative error %.4f (E0 %.4f)  cosine %.6f\n", spec.name.c_str(), e16, e0, cos);
    EXPECT_LT(e16, 3 * e0 + 0.002) << spec.name;
    EXPECT_LT(e16, 0.25) << spec.name;
    EXPECT_GT(cos, 0.97) << spec.name;
  }
}

TEST(CnnBf16, SameInputsGiveTheSameGradientsBitForBit) {
  if (ddp::nn::cpu_bf16().support == ddp::nn::Bf16Support::unsupported) GTEST_SKIP() << "no AVX-512";
  double a = 0, b = 0;
  EXPECT_EQ(gradients(Precision::bf16, 32, &a), gradients(Precision::bf16, 32, &b));
  EXPECT_EQ(a, b);
}

// oneDNN falls back to reference kernels (100-1000x slower) when a layout or
// type combination has no optimised kernel: with native bf16, none may run.
TEST(CnnBf16, NoPrimitiveRunsOnAReferenceKernel) {
  if (!native_bf16()) GTEST_SKIP() << "this CPU has no native bf16 (" << ddp::nn::cpu_bf16().isa << ")";
  for (Precision p : {Precision::fp32, Precision::bf16}) {
    Cnn net(0.5f, 0, p);
    const auto impls = net.implementations(64);
    EXPECT_EQ(impls.size(), 18u);  // conv 2+3, pool 2+2, ReLU 3, fc 3+3
    for (const auto& [what, impl] : impls) {
      std::printf("[ impl     ] %s %-24s %s\n", ddp::nn::to_string(p), what.c_str(), impl.c_str());
      EXPECT_EQ(impl.find("ref"), std::string::npos) << what << " runs " << impl;
    }
  }
}

TEST(CnnBf16, PrecisionNamesRoundTrip) {
  for (Precision p : {Precision::fp32, Precision::bf16})
    EXPECT_EQ(ddp::nn::precision_from_string(ddp::nn::to_string(p)), p);
  EXPECT_FALSE(ddp::nn::precision_from_string("BF16").has_value());
  EXPECT_FALSE(ddp::nn::precision_from_string("fp16").has_value());
}
