#include "nn/softmax_xent.h"

#include <cmath>

namespace ddp::nn {

SoftmaxCrossEntropy::SoftmaxCrossEntropy(const memory& logits, const memory& diff_logits)
    : n_(static_cast<int>(logits.get_desc().dims()[0])),
      classes_(static_cast<int>(logits.get_desc().dims()[1])),
      logits_(static_cast<const float*>(logits.get_data_handle())),
      diff_(static_cast<float*>(diff_logits.get_data_handle())) {}

LossResult SoftmaxCrossEntropy::forward(const int32_t* labels) {
  labels_ = labels;
  LossResult r;
  for (int i = 0; i < n_; ++i) {
    const float* z = logits_ + static_cast<size_t>(i) * classes_;
    int best = 0;
    for (int c = 1; c < classes_; ++c)
      if (z[c] > z[best]) best = c;
    double sum = 0;
    for (int c = 0; c < classes_; ++c) sum += std::exp(static_cast<double>(z[c]) - z[best]);
    r.loss += std::log(sum) - (static_cast<double>(z[labels[i]]) - z[best]);
    r.correct += best == labels[i];
  }
  r.loss /= n_;
  return r;
}

void SoftmaxCrossEntropy::backward() const {
  for (int i = 0; i < n_; ++i) {
    const float* z = logits_ + static_cast<size_t>(i) * classes_;
    float* d = diff_ + static_cast<size_t>(i) * classes_;
    float zmax = z[0];
    for (int c = 1; c < classes_; ++c) zmax = std::max(zmax, z[c]);
    float sum = 0;
    for (int c = 0; c < classes_; ++c) sum += (d[c] = std::exp(z[c] - zmax));
    const float inv = 1.f / (sum * n_);
    for (int c = 0; c < classes_; ++c) d[c] *= inv;
    d[labels_[i]] -= 1.f / n_;
  }
}

}  // namespace ddp::nn
