// MaxPool2d in bf16 runs on a kernel of our own (nn/maxpool2d.h): it must
// give what oneDNN's pooling gives, bit for bit, forward and backward,
// including which element of a tied window gets the gradient.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <vector>

#include "common/bf16.h"
#include "nn/maxpool2d.h"

using namespace ddp::nn;

// Named, not anonymous: the fixture is a base of the test classes, and in a
// unity build an anonymous one would trip -Wsubobject-linkage.
namespace maxpool_test {

struct Case {
  const char* name;
  memory::dims dims;
  tag layout;
  bool ours;  // whether our kernel should take it (else oneDNN's pooling runs)
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Values from a set of 7, so that most windows hold ties, with zeros and
// negatives as a ReLU's output would not have them (the kernel must not
// depend on that).
void fill(const memory& m, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> level(-3, 3);
  auto* p = static_cast<uint16_t*>(m.get_data_handle());
  for (size_t i = 0; i < m.get_desc().get_size() / 2; ++i) p[i] = ddp::float_to_bf16(0.25f * level(gen));
}

std::vector<uint16_t> bits(const memory& m) {
  const auto* p = static_cast<const uint16_t*>(m.get_data_handle());
  return {p, p + m.get_desc().get_size() / 2};
}

class MaxPool2dBf16 : public ::testing::TestWithParam<Case> {};

}  // namespace maxpool_test

using namespace maxpool_test;

TEST_P(MaxPool2dBf16, GivesOneDnnsOutputAndGradientBitForBit) {
  if (!__builtin_cpu_supports("avx512f")) GTEST_SKIP() << "no AVX-512: oneDNN's pooling runs";
  const Case& c = GetParam();
  Runtime rt;
  const memory::desc md(c.dims, dt::bf16, c.layout);
  // As in the network: the gradient of the source overwrites the source.
  const memory src(md, rt.engine);
  const memory diff_src(md, rt.engine, src.get_data_handle());
  fill(src, 1);
  const std::vector<uint16_t> src_bits = bits(src);
  MaxPool2d pool(rt, src, diff_src);
  Implementations impls;
  pool.implementations("pool", impls);
  EXPECT_EQ(impls.at(0).second == "ddp:avx512f", c.ours) << impls.at(0).second;

  // oneDNN's pooling on a copy of the source, into memories of its own.
  const memory::dims out = {c.dims[0], c.dims[1], c.dims[2] / 2, c.dims[3] / 2}, window = {2, 2}, pad = {0, 0};
  const dnnl::pooling_forward::primitive_desc fpd(
      dnnl::pooling_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max, md,
                                  memory::desc(out, dt::bf16, tag::any), window, window, pad, pad),
      rt.engine);
  ASSERT_EQ(fpd.dst_desc(), pool.dst().get_desc());
  const memory ref_src(md, rt.engine), ref_dst(fpd.dst_desc(), rt.engine), ws(fpd.workspace_desc(), rt.engine);
  std::memcpy(ref_src.get_data_handle(), src_bits.data(), md.get_size());
  dnnl::pooling_forward(fpd).execute(rt.stream, {{DNNL_ARG_SRC, ref_src}, {DNNL_ARG_DST, ref_dst}, {DNNL_ARG_WORKSPACE, ws}});

  pool.forward(rt);
  EXPECT_EQ(bits(pool.dst()), bits(ref_dst));

  fill(pool.diff_dst(), 2);
  const memory ref_diff_dst(fpd.dst_desc(), rt.engine), ref_diff_src(md, rt.engine);
  std::memcpy(ref_diff_dst.get_data_handle(), pool.diff_dst().get_data_handle(), fpd.dst_desc().get_size());
  const dnnl::pooling_backward::primitive_desc bpd(
      dnnl::pooling_backward::desc(dnnl::algorithm::pooling_max, md, fpd.dst_desc(), window, window, pad, pad),
      rt.engine, fpd);
  dnnl::pooling_backward(bpd).execute(
      rt.stream, {{DNNL_ARG_DIFF_DST, ref_diff_dst}, {DNNL_ARG_DIFF_SRC, ref_diff_src}, {DNNL_ARG_WORKSPACE, ws}});

  pool.backward(rt);
  const std::vector<uint16_t> got = bits(diff_src), want = bits(ref_diff_src);
  ASSERT_EQ(got.size(), want.size());
  size_t nonzero = 0, wrong = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    nonzero += (want[i] & 0x7fff) != 0;
    wrong += got[i] != want[i];
  }
  EXPECT_EQ(wrong, 0u) << "of " << got.size() << " gradient values";
  EXPECT_GT(nonzero, got.size() / 8) << "the gradients must not be trivially zero";
}

// The network's two pools (conv1's nChw16c output, conv2's NHWC one on AMX)
// and a plain NCHW source, which our kernel does not take.
INSTANTIATE_TEST_SUITE_P(Layouts, MaxPool2dBf16,
                         ::testing::Values(Case{"pool1_nChw16c", {8, 32, 28, 28}, tag::nChw16c, true},
                                           Case{"pool2_nhwc", {8, 64, 14, 14}, tag::nhwc, true},
                                           Case{"nchw", {2, 16, 6, 6}, tag::nchw, false}),
                         [](const auto& info) { return std::string(info.param.name); });
