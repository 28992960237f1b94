#include "dist/low_rank.h"

#include <cmath>

namespace ddp::dist::low_rank {

namespace {

// a . b with eight partial sums (elements j mod 8), added in a fixed order.
float dot(const float* a, const float* b, size_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (size_t t = 0; t < 8; ++t) s[t] += a[j + t] * b[j + t];
  for (size_t t = 0; j < n; ++j, ++t) s[t] += a[j] * b[j];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// y[j] += a * x[j], in blocks of 8 (what -O2 vectorises); x and y apart.
void axpy(float a, const float* __restrict x, float* __restrict y, size_t n) {
  size_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (size_t t = 0; t < 8; ++t) y[j + t] += a * x[j + t];
  for (; j < n; ++j) y[j] += a * x[j];
}

double dot_double(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t j = 0; j < n; ++j) s += static_cast<double>(a[j]) * b[j];
  return s;
}

}  // namespace

void multiply(const float* m, const float* qt, float* pt, size_t rows, size_t cols, size_t r) {
  for (size_t i = 0; i < rows; ++i)
    for (size_t k = 0; k < r; ++k) pt[k * rows + i] = dot(m + i * cols, qt + k * cols, cols);
}

void multiply_transposed(const float* m, const float* pt, float* qt, size_t rows, size_t cols, size_t r) {
  for (size_t x = 0; x < r * cols; ++x) qt[x] = 0;
  for (size_t i = 0; i < rows; ++i) {
    const float* row = m + i * cols;
    for (size_t k = 0; k < r; ++k) axpy(pt[k * rows + i], row, qt + k * cols, cols);
  }
}

void reconstruct_row(const float* pt, const float* qt, size_t i, size_t rows, size_t cols, size_t r, float* out) {
  for (size_t j = 0; j < cols; ++j) out[j] = 0;
  for (size_t k = 0; k < r; ++k) axpy(pt[k * rows + i], qt + k * cols, out, cols);
}

void add(float* __restrict y, const float* __restrict x, size_t n) {
  size_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (size_t t = 0; t < 8; ++t) y[j + t] += x[j + t];
  for (; j < n; ++j) y[j] += x[j];
}

void keep_residual(float* __restrict m, float* __restrict residual, const float* __restrict v, float scale, size_t n) {
  size_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (size_t t = 0; t < 8; ++t) {
      residual[j + t] = m[j + t] - v[j + t] * scale;
      m[j + t] = v[j + t];
    }
  for (; j < n; ++j) {
    residual[j] = m[j] - v[j] * scale;
    m[j] = v[j];
  }
}

void orthogonalize(float* x, size_t r, size_t n) {
  for (size_t c = 0; c < r; ++c) {
    float* v = x + c * n;
    for (int pass = 0; pass < 2; ++pass)
      for (size_t b = 0; b < c; ++b) {
        const float* u = x + b * n;  // a unit vector, or zero
        const auto d = static_cast<float>(dot_double(u, v, n));
        for (size_t t = 0; t < n; ++t) v[t] -= d * u[t];
      }
    const double squares = dot_double(v, v, n);
    if (squares == 0) continue;  // a zero vector stays zero
    const auto norm = static_cast<float>(std::sqrt(squares));
    for (size_t t = 0; t < n; ++t) v[t] /= norm;
  }
}

}  // namespace ddp::dist::low_rank
