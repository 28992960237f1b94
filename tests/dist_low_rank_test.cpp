// PowerSGD's parts (dist/powersgd.h, dist/low_rank.h): PyTorch's rule for
// which matrices to compress, and the kernels of the power iteration against
// double-precision sums, orthogonalisation included when the input has rank
// below r or a zero vector.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/rng.h"
#include "dist/low_rank.h"
#include "dist/powersgd.h"
#include "test_util.h"

using namespace ddp;
using namespace ddp::dist;

namespace {

using test_util::uniform;

}  // namespace

TEST(PowerSgdRule, CompressesWhereItSavesMoreThanHalfAsPyTorchDoes) {
  EXPECT_TRUE(powersgd_compresses(128, 3136, 2, 2));  // fc1
  EXPECT_TRUE(powersgd_compresses(64, 288, 2, 2));    // conv2
  EXPECT_TRUE(powersgd_compresses(32, 9, 2, 2));      // conv1: (32 + 9) * 2 * 2 = 164 < 288
  EXPECT_TRUE(powersgd_compresses(10, 128, 2, 2));    // fc2
  EXPECT_FALSE(powersgd_compresses(128, 1, 2, 2));    // a bias
  EXPECT_FALSE(powersgd_compresses(3, 12, 2, 2));     // 60 >= 36
  EXPECT_FALSE(powersgd_compresses(4, 4, 1, 2));      // equal: not compressed (16 < 16 is false)
  EXPECT_TRUE(powersgd_compresses(5, 5, 1, 2));       // 20 < 25
  EXPECT_FALSE(powersgd_compresses(32, 9, 2, 4));     // a higher rate
  // The rank is capped at min(rows, cols), where a factorisation never saves: (2 + 100) * 2 >= 200.
  EXPECT_FALSE(powersgd_compresses(2, 100, 50, 1));
}

TEST(LowRank, OrthogonalizeGivesOrthonormalVectorsAlsoBelowFullRank) {
  const size_t n = 200, r = 4;
  for (int kind = 0; kind < 3; ++kind) {  // full rank; vector 2 = 3 * vector 0 (+ rounding); vector 1 zero
    std::vector<float> x(r * n);
    for (size_t i = 0; i < x.size(); ++i) x[i] = uniform(5, i);
    for (size_t t = 0; t < n; ++t) {
      if (kind == 1) x[2 * n + t] = 3.0f * x[t];
      if (kind == 2) x[n + t] = 0.0f;
    }
    low_rank::orthogonalize(x.data(), r, n);
    for (size_t a = 0; a < r; ++a)
      for (size_t b = 0; b <= a; ++b) {
        double dot = 0;
        for (size_t t = 0; t < n; ++t) dot += static_cast<double>(x[a * n + t]) * x[b * n + t];
        const double want = a == b && !(kind == 2 && a == 1) ? 1.0 : 0.0;
        EXPECT_NEAR(dot, want, 1e-6) << "kind " << kind << " vectors " << a << ", " << b;
      }
  }
}

TEST(LowRank, ProductsMatchDouble) {
  const size_t rows = 7, cols = 37, r = 3;
  std::vector<float> m(rows * cols), qt(r * cols), pt(r * rows), back(r * cols), row(cols);
  for (size_t i = 0; i < m.size(); ++i) m[i] = uniform(1, i);
  for (size_t i = 0; i < qt.size(); ++i) qt[i] = uniform(2, i);
  low_rank::multiply(m.data(), qt.data(), pt.data(), rows, cols, r);
  low_rank::multiply_transposed(m.data(), pt.data(), back.data(), rows, cols, r);
  for (size_t i = 0; i < rows; ++i)
    for (size_t k = 0; k < r; ++k) {
      double want = 0;
      for (size_t j = 0; j < cols; ++j) want += static_cast<double>(m[i * cols + j]) * qt[k * cols + j];
      EXPECT_NEAR(pt[k * rows + i], want, 1e-5);
    }
  for (size_t j = 0; j < cols; ++j)
    for (size_t k = 0; k < r; ++k) {
      double want = 0;
      for (size_t i = 0; i < rows; ++i) want += static_cast<double>(m[i * cols + j]) * pt[k * rows + i];
      EXPECT_NEAR(back[k * cols + j], want, 1e-4);
    }
  low_rank::reconstruct_row(pt.data(), qt.data(), 4, rows, cols, r, row.data());
  for (size_t j = 0; j < cols; ++j) {
    double want = 0;
    for (size_t k = 0; k < r; ++k) want += static_cast<double>(pt[k * rows + 4]) * qt[k * cols + j];
    EXPECT_NEAR(row[j], want, 1e-5);
  }
}
