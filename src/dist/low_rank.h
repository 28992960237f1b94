// The dense kernels of PowerSGD's power iteration (dist/powersgd.h), on
// row-major float matrices: a gradient M [rows x cols] and its two factors,
// kept TRANSPOSED so that every loop runs over contiguous memory: P^T
// [r x rows] and Q^T [r x cols], r (the approximation rank) small. PyTorch's
// powerSGD_hook (torch/distributed/algorithms/ddp_comm_hooks/powerSGD_hook.py)
// views each gradient as tensor.view(shape[0], -1) and keeps P [rows x r]
// and Q [cols x r]: the same numbers, transposed.
//
// Plain loops in a fixed order, with no choice of kernels by CPU: every rank
// orthogonalises the same all-reduced P and decompresses the same P and Q,
// and must get the same bits, also on machines of different kinds. (Several
// partial sums, combined in a fixed order, and element-wise loops written
// in blocks of 8, let the compiler use vector instructions at -O2 without
// reordering any addition.)
#pragma once
#include <cstddef>

namespace ddp::dist::low_rank {

// P = M Q: pt [r x rows], pt[k][i] = sum over j of m[i][j] qt[k][j].
void multiply(const float* m, const float* qt, float* pt, size_t rows, size_t cols, size_t r);

// Q = M^T P: qt [r x cols], qt[k][j] = sum over i of m[i][j] pt[k][i].
void multiply_transposed(const float* m, const float* pt, float* qt, size_t rows, size_t cols, size_t r);

// Row i of P Q^T: out[j] = sum over k (in order) of pt[k][i] qt[k][j], j < cols.
void reconstruct_row(const float* pt, const float* qt, size_t i, size_t rows, size_t cols, size_t r, float* out);

// The element-wise passes of error feedback, in the same fixed order:
// y[j] += x[j]; and residual[j] = m[j] - v[j] * scale, then m[j] = v[j].
void add(float* y, const float* x, size_t n);
void keep_residual(float* m, float* residual, const float* v, float scale, size_t n);

// Makes the r rows of x [r x n] (the columns of PyTorch's [n x r] factor,
// r <= n) orthonormal in place: PyTorch's _orthogonalize_gram_schmidt
// (modified Gram-Schmidt: each vector in turn loses its projections on the
// ones before it, then is divided by its norm), with two differences, both
// for a gradient whose rank is below r, where a vector is left with rounding
// noise only:
//  - each vector is projected twice ("twice is enough": Giraud, Langou,
//    Rozloznik 2005), so that the noise left is orthogonal to the vectors
//    before it and P P^T M is still M; after PyTorch's single pass it points
//    anywhere, and P Q^T can then miss M by as much as M itself;
//  - a vector that is exactly zero stays zero (PyTorch, with its default
//    orthogonalization_epsilon 0, makes it NaN).
// Dot products and norms are summed in double. For full-rank input the
// result agrees with PyTorch's Gram-Schmidt to float rounding; for r > 2
// PyTorch uses a QR factorisation instead, whose vectors may differ in sign,
// which P Q^T does not see.
void orthogonalize(float* x, size_t r, size_t n);

}  // namespace ddp::dist::low_rank
