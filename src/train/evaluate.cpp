#include "train/evaluate.h"

#include <algorithm>

#include "data/sampler.h"

namespace ddp::train {

EvalResult evaluate(nn::Cnn& net, dist::Communicator& comm, const data::Dataset& test, int batch) {
  const auto idx = data::eval_indices(test.size, comm.rank(), comm.size());
  double sums[3] = {0, 0, 0};  // loss * n, correct, n
  for (size_t s = 0; s < idx.size(); s += static_cast<size_t>(batch)) {
    const int n = static_cast<int>(std::min<size_t>(batch, idx.size() - s));
    float* x = net.input(n);
    int32_t* y = net.labels(n);
    for (int j = 0; j < n; ++j) {
      test.copy_image(idx[s + j], x + static_cast<size_t>(j) * data::kPixels);
      y[j] = test.labels[idx[s + j]];
    }
    const auto r = net.forward(n, false);
    sums[0] += r.loss * n;
    sums[1] += r.correct;
    sums[2] += n;
  }
  comm.allreduce_sum(sums, 3);
  return {sums[0] / sums[2], sums[1] / sums[2]};
}

}  // namespace ddp::train
