#include "nn/dropout.h"

#include <algorithm>

#include "common/bf16.h"
#include "common/rng.h"

namespace ddp::nn {

Dropout::Dropout(const Runtime& rt, const memory& src, const memory& diff_src, float p)
    : p_(p),
      count_(src.get_desc().get_size() / memory::data_type_size(src.get_desc().data_type())),
      bf16_(src.get_desc().data_type() == dt::bf16),
      src_(src.get_data_handle()),
      diff_src_(diff_src.get_data_handle()),
      dst_(memory::desc(src.get_desc().dims(), dt::f32, tag::nc), rt.engine),
      diff_dst_(dst_.get_desc(), rt.engine),
      scale_(count_, 1.f) {}

void Dropout::forward(bool train, uint64_t seed) {
  float* dst = static_cast<float*>(dst_.get_data_handle());
  if (!train || p_ == 0.f) {
    std::fill(scale_.begin(), scale_.end(), 1.f);
  } else {
    SplitMix64 rng(seed);
    const float keep_scale = 1.f / (1.f - p_);
    for (size_t i = 0; i < count_; ++i) scale_[i] = rng.uniform_float() < p_ ? 0.f : keep_scale;
  }
  if (bf16_) {
    const auto* src = static_cast<const uint16_t*>(src_);
    for (size_t i = 0; i < count_; ++i) dst[i] = bf16_to_float(src[i]) * scale_[i];
  } else {
    const auto* src = static_cast<const float*>(src_);
    for (size_t i = 0; i < count_; ++i) dst[i] = src[i] * scale_[i];
  }
}

void Dropout::backward() const {
  const float* diff_dst = static_cast<const float*>(diff_dst_.get_data_handle());
  if (bf16_) {
    auto* diff_src = static_cast<uint16_t*>(diff_src_);
    for (size_t i = 0; i < count_; ++i) diff_src[i] = float_to_bf16(diff_dst[i] * scale_[i]);
  } else {
    auto* diff_src = static_cast<float*>(diff_src_);
    for (size_t i = 0; i < count_; ++i) diff_src[i] = diff_dst[i] * scale_[i];
  }
}

}  // namespace ddp::nn
