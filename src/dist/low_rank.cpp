#include "dist/low_rank.h"

#include <cmath>

namespace ddp::dist::low_rank {

void multiply(const float* m, const float* q, float* p, size_t rows, size_t cols, size_t r) {
  // Four partial sums per dot product (elements j mod 4), added in a fixed
  // order: four independent chains of additions instead of one.
  for (size_t i = 0; i < rows; ++i) {
    const float* row = m + i * cols;
    for (size_t k = 0; k < r; ++k) {
      float s[4] = {0, 0, 0, 0};
      size_t j = 0;
      for (; j + 4 <= cols; j += 4)
        for (size_t t = 0; t < 4; ++t) s[t] += row[j + t] * q[(j + t) * r + k];
      for (; j < cols; ++j) s[0] += row[j] * q[j * r + k];
      p[i * r + k] = (s[0] + s[1]) + (s[2] + s[3]);
    }
  }
}

void multiply_transposed(const float* m, const float* p, float* q, size_t rows, size_t cols, size_t r) {
  for (size_t x = 0; x < cols * r; ++x) q[x] = 0;
  for (size_t i = 0; i < rows; ++i) {
    const float* row = m + i * cols;
    const float* pi = p + i * r;
    for (size_t j = 0; j < cols; ++j)
      for (size_t k = 0; k < r; ++k) q[j * r + k] += row[j] * pi[k];
  }
}

namespace {

// Column c of x [rows x r] minus its projection on column b (a unit vector or zero).
void remove_projection(float* x, size_t rows, size_t r, size_t b, size_t c) {
  double dot = 0;
  for (size_t t = 0; t < rows; ++t) dot += static_cast<double>(x[t * r + b]) * x[t * r + c];
  const auto d = static_cast<float>(dot);
  for (size_t t = 0; t < rows; ++t) x[t * r + c] -= d * x[t * r + b];
}

}  // namespace

void orthogonalize(float* x, size_t rows, size_t r) {
  for (size_t c = 0; c < r; ++c) {
    for (int pass = 0; pass < 2; ++pass)
      for (size_t b = 0; b < c; ++b) remove_projection(x, rows, r, b, c);
    double squares = 0;
    for (size_t t = 0; t < rows; ++t) squares += static_cast<double>(x[t * r + c]) * x[t * r + c];
    if (squares == 0) continue;  // a zero column stays zero
    const auto norm = static_cast<float>(std::sqrt(squares));
    for (size_t t = 0; t < rows; ++t) x[t * r + c] /= norm;
  }
}

}  // namespace ddp::dist::low_rank
