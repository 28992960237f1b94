#include "dist/powersgd.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "common/rng.h"
#include "dist/low_rank.h"

namespace ddp::dist {

bool powersgd_compresses(size_t rows, size_t cols, int matrix_approximation_rank, double min_compression_rate) {
  const size_t r = std::min({rows, cols, static_cast<size_t>(std::max(matrix_approximation_rank, 1))});
  return static_cast<double>((rows + cols) * r) * min_compression_rate < static_cast<double>(rows * cols);
}

PowerSgd::PowerSgd(float* grads, size_t count, const BucketBounds& buckets, PowerSgdOptions options)
    : grads_(grads), count_(count), options_(std::move(options)), step_(options_.first_step) {
  DDP_ASSERT(grads != nullptr || count == 0, "PowerSgd needs a gradient buffer");
  DDP_ASSERT(options_.matrix_approximation_rank >= 1, "PowerSGD's matrix approximation rank must be at least 1");
  residual_.assign(count_, 0.0f);
  plan(buckets);
}

// Sorts the matrices, checks them, and lays out each bucket: its
// uncompressed ranges (with or without a residual), its compressed
// matrices, where their Ps go in wire_ and their Qs in q_.
void PowerSgd::plan(const BucketBounds& buckets) {
  std::vector<MatrixView> ms = options_.matrices;
  std::sort(ms.begin(), ms.end(), [](const MatrixView& a, const MatrixView& b) { return a.offset < b.offset; });
  size_t end_of_last = 0;
  for (const MatrixView& m : ms) {
    DDP_ASSERT(m.rows > 0 && m.cols > 0 && m.offset <= count_ && m.rows * m.cols <= count_ - m.offset,
               "PowerSGD matrix at " + std::to_string(m.offset) + " lies outside the gradient buffer");
    DDP_ASSERT(m.offset >= end_of_last, "PowerSGD matrices overlap at " + std::to_string(m.offset));
    end_of_last = m.offset + m.rows * m.cols;
  }
  buckets_.resize(buckets.size());
  size_t next = 0, q_floats = 0, wire_floats = 0, widest = 0;
  // q_ follows the matrices' order: bucket by bucket from the buffer's start.
  std::vector<size_t> order(buckets.size());
  for (size_t b = 0; b < buckets.size(); ++b) order[b] = buckets.size() - 1 - b;
  for (size_t b : order) {
    const auto [begin, end] = buckets[b];
    Bucket& bk = buckets_[b];
    auto add_plain = [&](size_t offset, size_t n, bool feedback) {
      if (n == 0) return;
      bk.plain.push_back({offset, n, feedback});
      bk.plain_floats += n;
    };
    size_t at = begin;
    for (; next < ms.size() && ms[next].offset < end; ++next) {
      const MatrixView& m = ms[next];
      DDP_ASSERT(m.offset >= begin && m.offset + m.rows * m.cols <= end,
                 "PowerSGD matrix at " + std::to_string(m.offset) + " crosses a bucket boundary");
      add_plain(at, m.offset - at, false);
      at = m.offset + m.rows * m.cols;
      const int r = options_.matrix_approximation_rank;
      if (!powersgd_compresses(m.rows, m.cols, r, options_.min_compression_rate)) {
        add_plain(m.offset, m.rows * m.cols, true);
        continue;
      }
      Compressed c{m.offset, m.rows, m.cols, std::min({m.rows, m.cols, static_cast<size_t>(r)}), 0, 0};
      widest = std::max(widest, m.cols);
      c.p_at = bk.p_floats;
      bk.p_floats += c.rows * c.rank;
      c.q_at = q_floats;
      if (bk.compressed.empty()) bk.q_begin = q_floats;
      q_floats += c.cols * c.rank;
      bk.q_floats += c.cols * c.rank;
      bk.compressed.push_back(compressed_.size());
      compressed_.push_back(c);
    }
    add_plain(at, end - at, false);
    bk.wire_begin = wire_floats;
    wire_floats += bk.plain_floats + bk.p_floats;
  }
  DDP_ASSERT(next == ms.size(), "a PowerSGD matrix lies outside every bucket");
  q_.assign(q_floats, 0.0f);
  wire_.assign(wire_floats, 0.0f);
  row_.assign(widest, 0.0f);
}

size_t PowerSgd::floats_per_step() const {
  size_t n = 0;
  for (const Bucket& bk : buckets_) n += bk.plain_floats + bk.p_floats + bk.q_floats;
  return n;
}

void PowerSgd::add_residual(const Bucket& bk) {
  for (const Range& r : bk.plain)
    if (r.feedback) low_rank::add(grads_ + r.offset, residual_.data() + r.offset, r.count);
  for (size_t k : bk.compressed) {
    const Compressed& c = compressed_[k];
    low_rank::add(grads_ + c.offset, residual_.data() + c.offset, c.rows * c.cols);
  }
}

// Gathers the uncompressed elements, then P = M Q for every compressed
// matrix, into the bucket's all-reduce buffer.
void PowerSgd::compute_p(const Bucket& bk) {
  float* out = wire_.data() + bk.wire_begin;
  for (const Range& r : bk.plain) out = std::copy(grads_ + r.offset, grads_ + r.offset + r.count, out);
  for (size_t k : bk.compressed) {
    const Compressed& c = compressed_[k];
    float* q = q_.data() + c.q_at;
    if (!warm_) {  // the same values on every rank: a function of the seed and the matrix
      SplitMix64 g(mix_seed(options_.seed, c.offset));
      for (size_t i = 0; i < c.cols * c.rank; ++i) q[i] = 2.0f * g.uniform_float() - 1.0f;
    }
    low_rank::orthogonalize(q, c.rank, c.cols);
    low_rank::multiply(grads_ + c.offset, q, out + c.p_at, c.rows, c.cols, c.rank);
  }
}

// The bucket becomes the sums (P Q^T for the compressed matrices), and each
// element with a residual keeps what its new value / world size missed.
void PowerSgd::decompress(const Bucket& bk, float scale) {
  const float* sums = wire_.data() + bk.wire_begin;
  for (const Range& r : bk.plain) {
    for (size_t i = 0; i < r.count; ++i) {
      float& g = grads_[r.offset + i];
      if (r.feedback) residual_[r.offset + i] = g - sums[i] * scale;
      g = sums[i];
    }
    sums += r.count;
  }
  const float* p_all = wire_.data() + bk.wire_begin + bk.plain_floats;
  for (size_t k : bk.compressed) {
    const Compressed& c = compressed_[k];
    const float* p = p_all + c.p_at;
    const float* q = q_.data() + c.q_at;
    float* v = row_.data();
    for (size_t i = 0; i < c.rows; ++i) {
      low_rank::reconstruct_row(p, q, i, c.rows, c.cols, c.rank, v);
      const size_t at = c.offset + i * c.cols;
      low_rank::keep_residual(grads_ + at, residual_.data() + at, v, scale, c.cols);
    }
  }
}

void PowerSgd::end_step() {
  if (compressing()) warm_ = true;
  ++step_;
}

void PowerSgd::allreduce(Communicator& comm, float* data, size_t n, size_t b, const PowerSgdTracing& tracing,
                         std::pair<int64_t, int64_t>& span) {
  if (n == 0) return;
  const int64_t t0 = trace::now_ns();
  if (span.first == 0) span.first = t0;
  comm.allreduce_sum(data, n);
  span.second = trace::now_ns();
  if (tracing.recorder)
    tracing.recorder->record(tracing.thread, trace::Kind::allreduce, t0, span.second, static_cast<int64_t>(b),
                             static_cast<int64_t>(n * sizeof(float)));
}

std::pair<int64_t, int64_t> PowerSgd::reduce_bucket(size_t b, Communicator& comm, const PowerSgdTracing& tracing) {
  const Bucket& bk = buckets_.at(b);
  add_residual(bk);
  compute_p(bk);
  std::pair<int64_t, int64_t> span{0, 0};
  float* wire = wire_.data() + bk.wire_begin;
  allreduce(comm, wire, bk.plain_floats + bk.p_floats, b, tracing, span);
  for (size_t k : bk.compressed) {
    const Compressed& c = compressed_[k];
    float* p = wire + bk.plain_floats + c.p_at;
    low_rank::orthogonalize(p, c.rank, c.rows);
    low_rank::multiply_transposed(grads_ + c.offset, p, q_.data() + c.q_at, c.rows, c.cols, c.rank);
  }
  allreduce(comm, q_.data() + bk.q_begin, bk.q_floats, b, tracing, span);
  decompress(bk, 1.0f / static_cast<float>(comm.size()));
  return span;
}

}  // namespace ddp::dist
