// Softmax cross-entropy over a batch of logits, mean over the batch
// (PyTorch's CrossEntropyLoss with reduction="mean").
#pragma once
#include <cstdint>

#include "nn/onednn.h"

namespace ddp::nn {

struct LossResult {
  double loss = 0;   // mean over the batch
  int correct = 0;   // samples whose arg-max logit is the label
};

class SoftmaxCrossEntropy {
 public:
  // logits, diff_logits: [n, classes], plain.
  SoftmaxCrossEntropy(const memory& logits, const memory& diff_logits);

  LossResult forward(const int32_t* labels);  // labels: [n]
  // diff_logits = (softmax - onehot(labels)) / n, from the last forward.
  void backward() const;

 private:
  int n_, classes_;
  const float* logits_;
  float* diff_;
  const int32_t* labels_ = nullptr;
};

}  // namespace ddp::nn
