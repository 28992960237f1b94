#include "nn/maxpool2d.h"

#include <immintrin.h>

#include <cstdint>
#include <optional>

namespace ddp::nn {

namespace {

// The strides of a 4-D tensor whose channels come in contiguous groups of 16
// (nChw16c: one block; NHWC: channels innermost), or none for any other
// layout (then oneDNN's pooling runs).
std::optional<MaxPool2d::Strides> channel_group_strides(const memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.ndims != 4 || d.format_kind != dnnl_blocked || d.offset0 != 0 || d.dims[1] % 16 != 0) return std::nullopt;
  for (int i = 0; i < 4; ++i)
    if (d.padded_dims[i] != d.dims[i] || d.padded_offsets[i] != 0) return std::nullopt;
  const auto& b = d.format_desc.blocking;
  const bool blocked16 = b.inner_nblks == 1 && b.inner_idxs[0] == 1 && b.inner_blks[0] == 16;
  const bool channels_last = b.inner_nblks == 0 && b.strides[1] == 1;
  if (!blocked16 && !channels_last) return std::nullopt;
  return MaxPool2d::Strides{b.strides[0], blocked16 ? b.strides[1] : 16, b.strides[2], b.strides[3]};
}

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused
// merge source, which -Wmaybe-uninitialized reports after inlining (GCC bug
// 105593): a false alarm (as in dist/bf16.cpp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

// 16 values to and from f32: bf16 exactly both ways here, since every value
// is a bf16 (a max of bf16 values, or a bf16 gradient copied or zeroed).
__attribute__((target("avx512f"))) inline __m512 load16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
__attribute__((target("avx512f"))) inline void store16(uint16_t* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v), 16)));
}
__attribute__((target("avx512f"))) inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
__attribute__((target("avx512f"))) inline void store16(float* p, __m512 v) { _mm512_storeu_ps(p, v); }

// The maximum of a window's four values v0..v3 (row-major), the first of
// them where several are equal, as oneDNN's pooling picks it. Equal values
// have the same bits except 0 and -0, which vmaxps does not order: it
// returns its second operand then, so each max takes the earlier value
// second.
__attribute__((target("avx512f"))) inline __m512 window_max(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
  return _mm512_max_ps(_mm512_max_ps(v3, v2), _mm512_max_ps(v1, v0));
}

// One window per 16 channels at a time, T = float (f32) or uint16_t (bf16).
// Parallel over (image, channel group), on the threads oneDNN's kernels get
// (the same OpenMP runtime).
template <class T>
__attribute__((target("avx512f"))) void forward_kernel(const T* src, T* dst, const memory::dims& dims,
                                                       MaxPool2d::Strides s, MaxPool2d::Strides d) {
  const memory::dim n = dims[0], groups = dims[1] / 16, oh = dims[2] / 2, ow = dims[3] / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (memory::dim i = 0; i < n; ++i) {
    for (memory::dim g = 0; g < groups; ++g) {
      const T* in = src + i * s.n + g * s.group;
      T* out = dst + i * d.n + g * d.group;
      for (memory::dim y = 0; y < oh; ++y) {
        for (memory::dim x = 0; x < ow; ++x) {
          const T* p = in + 2 * y * s.h + 2 * x * s.w;
          store16(out + y * d.h + x * d.w,
                  window_max(load16(p), load16(p + s.w), load16(p + s.h), load16(p + s.h + s.w)));
        }
      }
    }
  }
}

// Each window's gradient goes to its first maximum in row-major order
// (oneDNN's rule), the other three get 0. oneDNN adds the gradient to a
// zeroed diff_src, which makes a gradient of -0 0: so does adding 0 here
// (which changes no other value). Reads a window's four source
// values before writing its four gradients, so diff_src may be src.
template <class T>
__attribute__((target("avx512f"))) void backward_kernel(const T* src, const T* diff_dst, T* diff_src,
                                                        const memory::dims& dims, MaxPool2d::Strides s,
                                                        MaxPool2d::Strides d) {
  const memory::dim n = dims[0], groups = dims[1] / 16, oh = dims[2] / 2, ow = dims[3] / 2;
  const __m512 zero = _mm512_setzero_ps();
#pragma omp parallel for collapse(2) schedule(static)
  for (memory::dim i = 0; i < n; ++i) {
    for (memory::dim g = 0; g < groups; ++g) {
      const memory::dim in_base = i * s.n + g * s.group;
      const T* grad = diff_dst + i * d.n + g * d.group;
      for (memory::dim y = 0; y < oh; ++y) {
        for (memory::dim x = 0; x < ow; ++x) {
          const memory::dim o = in_base + 2 * y * s.h + 2 * x * s.w;
          const memory::dim at[4] = {o, o + s.w, o + s.h, o + s.h + s.w};
          const __m512 v0 = load16(src + at[0]), v1 = load16(src + at[1]);
          const __m512 v2 = load16(src + at[2]), v3 = load16(src + at[3]);
          const __m512 max = window_max(v0, v1, v2, v3);
          const __m512 g_out = _mm512_add_ps(load16(grad + y * d.h + x * d.w), zero);
          const __mmask16 k0 = _mm512_cmp_ps_mask(v0, max, _CMP_EQ_OQ);
          const __mmask16 k1 = _mm512_cmp_ps_mask(v1, max, _CMP_EQ_OQ) & ~k0;
          const __mmask16 k2 = _mm512_cmp_ps_mask(v2, max, _CMP_EQ_OQ) & ~(k0 | k1);
          const __mmask16 k3 = ~(k0 | k1 | k2);
          store16(diff_src + at[0], _mm512_mask_mov_ps(zero, k0, g_out));
          store16(diff_src + at[1], _mm512_mask_mov_ps(zero, k1, g_out));
          store16(diff_src + at[2], _mm512_mask_mov_ps(zero, k2, g_out));
          store16(diff_src + at[3], _mm512_mask_mov_ps(zero, k3, g_out));
        }
      }
    }
  }
}

#pragma GCC diagnostic pop

}  // namespace

MaxPool2d::MaxPool2d(const Runtime& rt, const memory& src, const memory& diff_src)
    : src_(src), diff_src_(diff_src), dims_(src.get_desc().dims()) {
  const memory::dims out = {dims_[0], dims_[1], dims_[2] / 2, dims_[3] / 2};
  const memory::dims window = {2, 2}, pad = {0, 0};
  const dt type = src.get_desc().data_type();
  // oneDNN's primitive descriptor in either case: it picks dst's layout (the
  // source's own, nChw16c or NHWC here).
  const dnnl::pooling_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max,
                                       src.get_desc(), any_desc(out, type), window, window, pad, pad);
  const dnnl::pooling_forward::primitive_desc fpd(fd, rt.engine);
  dst_ = memory(fpd.dst_desc(), rt.engine);
  diff_dst_ = memory(fpd.dst_desc(), rt.engine);

  const auto s = channel_group_strides(src.get_desc()), d = channel_group_strides(fpd.dst_desc());
  if ((type == dt::f32 || type == dt::bf16) && s && d && diff_src.get_desc() == src.get_desc() && dims_[2] % 2 == 0 &&
      dims_[3] % 2 == 0 && __builtin_cpu_supports("avx512f")) {
    src_strides_ = *s;
    dst_strides_ = *d;
    bf16_ = type == dt::bf16;
    impl_fwd_ = impl_bwd_ = "ddp:avx512f";
    return;
  }

  impl_fwd_ = fpd.impl_info_str();
  workspace_ = memory(fpd.workspace_desc(), rt.engine);
  fwd_ = Step(dnnl::pooling_forward(fpd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst_}, {DNNL_ARG_WORKSPACE, workspace_}});
  const dnnl::pooling_backward::desc bd(dnnl::algorithm::pooling_max, diff_src.get_desc(), fpd.dst_desc(), window,
                                        window, pad, pad);
  const dnnl::pooling_backward::primitive_desc bpd(bd, rt.engine, fpd);
  impl_bwd_ = bpd.impl_info_str();
  bwd_ = Step(dnnl::pooling_backward(bpd),
              {{DNNL_ARG_DIFF_DST, diff_dst_}, {DNNL_ARG_DIFF_SRC, diff_src}, {DNNL_ARG_WORKSPACE, workspace_}});
}

template <class T>
void MaxPool2d::run_forward() const {
  forward_kernel(static_cast<const T*>(src_.get_data_handle()), static_cast<T*>(dst_.get_data_handle()), dims_,
                 src_strides_, dst_strides_);
}

template <class T>
void MaxPool2d::run_backward() const {
  backward_kernel(static_cast<const T*>(src_.get_data_handle()), static_cast<const T*>(diff_dst_.get_data_handle()),
                  static_cast<T*>(diff_src_.get_data_handle()), dims_, src_strides_, dst_strides_);
}

void MaxPool2d::forward(const Runtime& rt) const {
  if (fwd_) return fwd_.run(rt);
  bf16_ ? run_forward<uint16_t>() : run_forward<float>();
}

void MaxPool2d::backward(const Runtime& rt) const {
  if (bwd_) return bwd_.run(rt);
  bf16_ ? run_backward<uint16_t>() : run_backward<float>();
}

void MaxPool2d::implementations(const std::string& name, Implementations& out) const {
  out.emplace_back(name + ".forward", impl_fwd_);
  out.emplace_back(name + ".backward", impl_bwd_);
}

}  // namespace ddp::nn
