#include "nn/dropout.h"

#include <algorithm>

#include "common/rng.h"

namespace ddp::nn {

Dropout::Dropout(const Runtime& rt, const memory& src, const memory& diff_src, float p)
    : p_(p),
      count_(src.get_desc().get_size() / sizeof(float)),
      src_(static_cast<const float*>(src.get_data_handle())),
      diff_src_(static_cast<float*>(diff_src.get_data_handle())),
      dst_(src.get_desc(), rt.engine),
      diff_dst_(src.get_desc(), rt.engine),
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
  for (size_t i = 0; i < count_; ++i) dst[i] = src_[i] * scale_[i];
}

void Dropout::backward() const {
  const float* diff_dst = static_cast<const float*>(diff_dst_.get_data_handle());
  for (size_t i = 0; i < count_; ++i) diff_src_[i] = diff_dst[i] * scale_[i];
}

}  // namespace ddp::nn
