// The dense kernels of PowerSGD's power iteration (dist/powersgd.h), on
// row-major float matrices: a gradient M [rows x cols], its left factor
// P [rows x r] and right factor Q [cols x r], r (the approximation rank)
// small, 1 to a few dozen. Shapes and layout are PyTorch's: powerSGD_hook
// views each gradient as tensor.view(shape[0], -1) and keeps P and Q as
// [n x r] and [m x r] (torch/distributed/algorithms/ddp_comm_hooks/powerSGD_hook.py).
//
// Plain loops in a fixed order, with no choice of kernels by CPU: every rank
// orthogonalises the same all-reduced P and decompresses the same P and Q,
// and must get the same bits, also on machines of different kinds.
#pragma once
#include <cstddef>

namespace ddp::dist::low_rank {

// p = m q: p [rows x r] = m [rows x cols] times q [cols x r].
void multiply(const float* m, const float* q, float* p, size_t rows, size_t cols, size_t r);

// q = m^T p: q [cols x r] = m [rows x cols] transposed times p [rows x r].
void multiply_transposed(const float* m, const float* p, float* q, size_t rows, size_t cols, size_t r);

// Makes the r columns of x [rows x r] (r <= rows) orthonormal in place:
// PyTorch's _orthogonalize_gram_schmidt (modified Gram-Schmidt: each column
// in turn loses its projections on the columns before it, then is divided
// by its norm), with two differences, both for a gradient whose rank is
// below r, where a column is left with rounding noise only:
//  - each column is projected twice ("twice is enough": Giraud, Langou,
//    Rozloznik 2005), so that the noise left is orthogonal to the columns
//    before it and P P^T M is still M; PyTorch's single pass leaves it at an
//    arbitrary angle, and P Q^T then misses M by as much as M itself;
//  - a column that is exactly zero stays zero (PyTorch, with its default
//    orthogonalization_epsilon 0, makes it NaN).
// Dot products and norms are summed in double. For full-rank input the
// result agrees with PyTorch's Gram-Schmidt to float rounding; for r > 2
// PyTorch uses a QR factorisation instead, whose columns may differ in sign,
// which P Q^T does not see.
void orthogonalize(float* x, size_t rows, size_t r);

}  // namespace ddp::dist::low_rank
