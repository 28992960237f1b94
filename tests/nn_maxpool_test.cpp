// MaxPool2d runs on a kernel of our own in f32 and bf16 (nn/maxpool2d.h): it
// must give what oneDNN's pooling gives, bit for bit, forward and backward,
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
  dt type;
  memory::dims dims;
  tag layout;
  bool ours;      // whether our kernel should take it (else oneDNN's pooling runs)
  bool in_place;  // diff_src is src's memory, as in the network (both precisions)
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

size_t count(const memory& m) { return m.get_desc().get_size() / memory::data_type_size(m.get_desc().data_type()); }

// Values from a set of 8, so that most windows hold ties: -0.75 .. 0.75 in
// steps of 0.25 and -0 (which vmaxps does not order against 0), with zeros
// and negatives as a ReLU's output would not have them (the kernel must not
// depend on that).
void fill(const memory& m, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> level(-4, 3);
  auto value = [&] {
    const int l = level(gen);
    return l == -4 ? -0.f : 0.25f * l;
  };
  if (m.get_desc().data_type() == dt::bf16) {
    auto* p = static_cast<uint16_t*>(m.get_data_handle());
    for (size_t i = 0; i < count(m); ++i) p[i] = ddp::float_to_bf16(value());
  } else {
    auto* p = static_cast<float*>(m.get_data_handle());
    for (size_t i = 0; i < count(m); ++i) p[i] = value();
  }
}

// Each element's bits (a bf16's in the low 16).
std::vector<uint32_t> bits(const memory& m) {
  std::vector<uint32_t> out(count(m));
  if (m.get_desc().data_type() == dt::bf16) {
    const auto* p = static_cast<const uint16_t*>(m.get_data_handle());
    for (size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  } else {
    std::memcpy(out.data(), m.get_data_handle(), out.size() * 4);
  }
  return out;
}

class MaxPool2dOurs : public ::testing::TestWithParam<Case> {};

}  // namespace maxpool_test

using namespace maxpool_test;

TEST_P(MaxPool2dOurs, GivesOneDnnsOutputAndGradientBitForBit) {
  if (!__builtin_cpu_supports("avx512f")) GTEST_SKIP() << "no AVX-512: oneDNN's pooling runs";
  const Case& c = GetParam();
  Runtime rt;
  const memory::desc md(c.dims, c.type, c.layout);
  const memory src(md, rt.engine);
  const memory diff_src = c.in_place ? memory(md, rt.engine, src.get_data_handle()) : memory(md, rt.engine);
  fill(src, 1);
  if (!c.in_place) fill(diff_src, 3);  // the backward must write all of it
  const memory src_copy(md, rt.engine);
  std::memcpy(src_copy.get_data_handle(), src.get_data_handle(), md.get_size());
  MaxPool2d pool(rt, src, diff_src);
  Implementations impls;
  pool.implementations("pool", impls);
  EXPECT_EQ(impls.at(0).second == "ddp:avx512f", c.ours) << impls.at(0).second;
  EXPECT_EQ(impls.at(1).second == "ddp:avx512f", c.ours) << impls.at(1).second;

  // oneDNN's pooling on a copy of the source, into memories of its own.
  const memory::dims out = {c.dims[0], c.dims[1], c.dims[2] / 2, c.dims[3] / 2}, window = {2, 2}, pad = {0, 0};
  const dnnl::pooling_forward::primitive_desc fpd(
      dnnl::pooling_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max, md,
                                  memory::desc(out, c.type, tag::any), window, window, pad, pad),
      rt.engine);
  ASSERT_EQ(fpd.dst_desc(), pool.dst().get_desc());
  const memory ref_dst(fpd.dst_desc(), rt.engine), ws(fpd.workspace_desc(), rt.engine);
  dnnl::pooling_forward(fpd).execute(rt.stream,
                                     {{DNNL_ARG_SRC, src_copy}, {DNNL_ARG_DST, ref_dst}, {DNNL_ARG_WORKSPACE, ws}});

  pool.forward(rt);
  const std::vector<uint32_t> dst = bits(pool.dst()), ref = bits(ref_dst);
  EXPECT_EQ(dst, ref);
  size_t negative_zeros = 0;
  for (const uint32_t v : ref) negative_zeros += v == (c.type == dt::bf16 ? 0x8000u : 0x80000000u);
  EXPECT_GT(negative_zeros, 0u) << "the outputs must hold -0 (first of a window's zeros) to check the tie rule";

  fill(pool.diff_dst(), 2);
  const memory ref_diff_dst(fpd.dst_desc(), rt.engine), ref_diff_src(md, rt.engine);
  std::memcpy(ref_diff_dst.get_data_handle(), pool.diff_dst().get_data_handle(), fpd.dst_desc().get_size());
  const dnnl::pooling_backward::primitive_desc bpd(
      dnnl::pooling_backward::desc(dnnl::algorithm::pooling_max, md, fpd.dst_desc(), window, window, pad, pad),
      rt.engine, fpd);
  dnnl::pooling_backward(bpd).execute(
      rt.stream, {{DNNL_ARG_DIFF_DST, ref_diff_dst}, {DNNL_ARG_DIFF_SRC, ref_diff_src}, {DNNL_ARG_WORKSPACE, ws}});

  pool.backward(rt);
  const std::vector<uint32_t> got = bits(diff_src), want = bits(ref_diff_src);
  ASSERT_EQ(got.size(), want.size());
  const uint32_t magnitude = c.type == dt::bf16 ? 0x7fffu : 0x7fffffffu;
  size_t nonzero = 0, wrong = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    nonzero += (want[i] & magnitude) != 0;
    wrong += got[i] != want[i];
  }
  EXPECT_EQ(wrong, 0u) << "of " << got.size() << " gradient values";
  EXPECT_GT(nonzero, got.size() / 8) << "the gradients must not be trivially zero";
}

// The network's two pools in each precision: conv1's output in nChw16c,
// conv2's in NHWC (bf16 on AMX) or nChw16c (f32), with the gradient written
// over the source as in the network; the other layout of each too, a shape
// whose strides all differ (3 images, 3 channel groups, h != w), a
// gradient of its own, and a plain NCHW source, which our kernel does not
// take.
INSTANTIATE_TEST_SUITE_P(
    Layouts, MaxPool2dOurs,
    ::testing::Values(Case{"bf16_pool1_nChw16c", dt::bf16, {8, 32, 28, 28}, tag::nChw16c, true, true},
                      Case{"bf16_pool2_nhwc", dt::bf16, {8, 64, 14, 14}, tag::nhwc, true, true},
                      Case{"bf16_nChw16c_uneven", dt::bf16, {3, 48, 10, 6}, tag::nChw16c, true, false},
                      Case{"bf16_nhwc_uneven", dt::bf16, {3, 48, 10, 6}, tag::nhwc, true, false},
                      Case{"bf16_nchw", dt::bf16, {2, 16, 6, 6}, tag::nchw, false, true},
                      Case{"f32_pool1_nChw16c", dt::f32, {8, 32, 28, 28}, tag::nChw16c, true, true},
                      Case{"f32_pool2_nChw16c", dt::f32, {8, 64, 14, 14}, tag::nChw16c, true, true},
                      Case{"f32_pool2_nhwc", dt::f32, {8, 64, 14, 14}, tag::nhwc, true, true},
                      Case{"f32_nChw16c_uneven", dt::f32, {3, 48, 10, 6}, tag::nChw16c, true, false},
                      Case{"f32_nhwc_uneven", dt::f32, {3, 48, 10, 6}, tag::nhwc, true, false},
                      Case{"f32_nchw", dt::f32, {2, 16, 6, 6}, tag::nchw, false, true}),
    [](const auto& info) { return std::string(info.param.name); });
