// PowerSGD gradient compression (Vogels, Karimireddy, Jaggi: "PowerSGD:
// Practical Low-Rank Gradient Compression for Distributed Optimization",
// NeurIPS 2019), as PyTorch 1.13's DDP communication hook powerSGD_hook does
// it (torch/distributed/algorithms/ddp_comm_hooks/powerSGD_hook.py), on the
// buckets of GradSync's flat gradient buffer (dist/grad_sync.h).
//
// Per bucket and step (after the first start_step steps, which all-reduce
// plain floats):
//  1. error feedback: each gradient gets this rank's residual of the last
//     compressed step added (M = G + E);
//  2. each gradient matrix M [n x m] (the tensor viewed as [shape[0] x rest]:
//     fc1 128 x 3136, conv2 64 x 288, ...) that compression shrinks by more
//     than min_compression_rate (PyTorch's _should_compress:
//     (n + m) r * rate < n m, with r = min(n, m, matrix_approximation_rank))
//     is multiplied by its Q [m x r], warm-started from the last step and
//     orthogonalised (random, the same on every rank, the first time): P = M Q;
//  3. one all-reduce (sum) of the bucket's Ps together with every element
//     that is not compressed (biases, matrices compression would not shrink,
//     and elements outside any matrix, such as the trainer's stop flag), in
//     one buffer; PyTorch makes these two all-reduces, with the same sums;
//  4. P is orthogonalised (dist/low_rank.h), Q = M^T P, all-reduced (sum);
//  5. the bucket becomes P Q^T (the low-rank approximation of the SUM of the
//     ranks' M) and the uncompressed sums, like a plain all-reduce leaves the
//     sum: the average is that times 1 / world size (GradSync::average_scale);
//  6. the new residual is what this rank's M lost: E = M - (its new value) /
//     world size, for every element of every matrix, compressed or not (as in
//     PyTorch; for the uncompressed ones it is M minus the average, which sums
//     to zero over the ranks). Elements outside any matrix have none.
// So the update applied plus the new residual is the gradient plus the old
// residual, on every rank. Every rank ends with the same bits in the bucket
// (the same all-reduced P and Q, the same kernels); the residuals differ per
// rank. Q is kept as the all-reduced sum (PyTorch divides it by the world
// size; the orthogonalisation that begins the next step removes the scale).
//
// Bytes on the wire per compressed step: sum over compressed matrices of
// (n + m) r floats, plus the uncompressed elements; for this project's CNN
// at rank 2, 7,825 floats (31 KB) instead of 421,643 (1.69 MB): 54x fewer.
//
// Differences from PyTorch, none of which changes the sums: one all-reduce
// of P and the uncompressed part (step 3); Q initialised from the run's
// seed with values uniform in [-1, 1) (PyTorch: torch.randn from a NumPy
// generator; any full-rank start works, and these are the same bits on every
// rank without relying on libm); plain all-reduce may stop at any step,
// start_step 0 included (PyTorch demands 2, for DDP's bucket rebuild after
// the first step, which this project does not do); orthogonalisation as
// dist/low_rank.h says. Tensors whose shapes repeat are not batched
// (PyTorch's default too).
//
// Thread rule: GradSync calls reduce_bucket from its communication thread;
// each bucket's state is touched by that call only, and step(),
// compressing() and end_step() run on the training thread outside a step's
// hand-offs (GradSync's mutex orders the two). In steady
// state nothing allocates: every buffer is allocated here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "common/trace.h"
#include "dist/bucket_layout.h"
#include "dist/communicator.h"

namespace ddp::dist {

// --powersgd-rank: our default 2 (PyTorch's matrix_approximation_rank
// defaults to 1): rank 1 loses visibly more accuracy on this model's fc1.
constexpr int kDefaultPowerSgdRank = 2;
// --powersgd-start-step: plain all-reduce for the first 100 steps. PyTorch's
// state defaults to 1,000 and its documentation suggests starting at about
// 10% of the training steps, because the first steps are the most sensitive
// to an inaccurate gradient; this project's reference run (MNIST, 3 epochs, 2
// ranks of batch 64) has 1,407 steps, so 100 (7%; 21% of one epoch) keeps
// that early phase exact and leaves 93% of the run compressed. With 1,000,
// two thirds of that run would send full gradients.
constexpr int64_t kDefaultPowerSgdStartStep = 100;

// One gradient tensor in the flat buffer: rows x cols floats at `offset`,
// row-major (PyTorch's tensor.view(shape[0], -1); a bias is rows x 1).
struct MatrixView {
  size_t offset = 0;
  size_t rows = 0;
  size_t cols = 0;
};

struct PowerSgdOptions {
  int matrix_approximation_rank = kDefaultPowerSgdRank;  // r (>= 1); min(n, m, r) per matrix
  int64_t start_step = kDefaultPowerSgdStartStep;        // steps [0, start_step) all-reduce plain floats
  int64_t first_step = 0;  // the step the first GradSync::finish completes (> 0 when a run resumes)
  double min_compression_rate = 2;  // PyTorch's: compress only if it saves more than this factor
  uint64_t seed = 0;                // Q's random start
  // The model's gradient tensors, not overlapping, each inside one bucket;
  // the buffer's other elements are all-reduced uncompressed, without
  // error feedback.
  std::vector<MatrixView> matrices;
};

// Where PowerSgd::reduce_bucket records each all-reduce (recorder null: nowhere).
struct PowerSgdTracing {
  trace::Recorder* recorder = nullptr;
  trace::Thread thread = trace::Thread::comm;
};

// PyTorch's _should_compress: true when (rows + cols) * rank *
// min_compression_rate < rows * cols, rank = min(rows, cols, matrix rank).
bool powersgd_compresses(size_t rows, size_t cols, int matrix_approximation_rank, double min_compression_rate);

class PowerSgd {
 public:
  // A compressed matrix: where it is, its rank, and where its Q lies in q_state().
  struct Compressed {
    size_t offset = 0, rows = 0, cols = 0, rank = 0;
    size_t p_at = 0;  // P^T [rank x rows]: into the bucket's all-reduce buffer, after its uncompressed part
    size_t q_at = 0;  // Q^T [rank x cols]: into q_state()
  };

  // grads: the flat buffer [count] (outlives this); buckets: GradSync's
  // (dist::bucket_layout). A matrix out of bounds, overlapping another or
  // across two buckets throws std::logic_error.
  PowerSgd(float* grads, size_t count, const BucketBounds& buckets, PowerSgdOptions options);

  // Whether the step in progress compresses (its index >= start_step).
  bool compressing() const { return step_ >= options_.start_step; }
  // The index of the step in progress; end_step() moves to the next.
  int64_t step() const { return step_; }
  void end_step();

  // Steps 1-6 above for bucket b (its bounds as at construction), through
  // `comm`, whose size is the world size. Returns when the first all-reduce
  // was entered and the last returned (trace::now_ns; 0 and 0 for a bucket
  // with nothing to send). Throws what the communicator throws.
  std::pair<int64_t, int64_t> reduce_bucket(size_t b, Communicator& comm, const PowerSgdTracing& tracing = {});

  // Floats handed to the communicator per compressed step: all buckets,
  // both all-reduces.
  size_t floats_per_step() const;
  const std::vector<Compressed>& compressed() const { return compressed_; }

  // The state a step leaves for the next (tests and checkpoints). residuals:
  // [count], this rank's error feedback (zero outside the matrices and
  // before the first compressed step). q_state: the compressed matrices' Qs
  // in the order of compressed() (by offset), each transposed, [rank x cols]
  // row-major (dist/low_rank.h; PyTorch keeps Q as [cols x rank]), the same
  // on every rank. warm_started: false until the first compressed
  // step has set Q (that step starts from random values instead);
  // set_warm_started(true) makes the next step start from q_state() as is.
  std::span<float> residuals() { return residual_; }
  std::span<float> q_state() { return q_; }
  bool warm_started() const { return warm_; }
  void set_warm_started(bool warm) { warm_ = warm; }

 private:
  // What bucket b holds, in increasing offset.
  struct Range {
    size_t offset = 0, count = 0;
    bool feedback = false;  // inside a matrix: has a residual
  };
  struct Bucket {
    std::vector<Range> plain;        // all-reduced as floats
    std::vector<size_t> compressed;  // indices into compressed_
    size_t plain_floats = 0, p_floats = 0, q_begin = 0, q_floats = 0;
    size_t wire_begin = 0;  // its [plain | P] buffer in wire_
  };

  void plan(const BucketBounds& buckets);
  void add_residual(const Bucket& bk);
  void compute_p(const Bucket& bk);
  void decompress(const Bucket& bk, float scale);
  // All-reduces data[0, n) (nothing when n is 0), widening span to cover it.
  void allreduce(Communicator& comm, float* data, size_t n, size_t b, const PowerSgdTracing& tracing,
                 std::pair<int64_t, int64_t>& span);

  float* grads_;
  size_t count_;
  PowerSgdOptions options_;
  int64_t step_;
  bool warm_ = false;
  std::vector<Compressed> compressed_;
  std::vector<Bucket> buckets_;
  std::vector<float> residual_;  // [count_]
  std::vector<float> q_;         // every compressed matrix's Q
  std::vector<float> wire_;      // per bucket: its uncompressed elements, then its Ps (transposed)
  std::vector<float> row_;       // one row of a decompressed matrix
};

}  // namespace ddp::dist
