// DistributedSampler semantics (PyTorch): each epoch a permutation of
// [0, n) seeded by (seed, epoch) is padded by wrapping around to a multiple
// of the world size and dealt out rank by rank: rank r takes positions
// r, r + world, r + 2*world, ... Every rank gets ceil(n / world) indices, so
// every rank runs the same number of steps. A world of one gets the whole
// permutation: serial training is the same code.
#pragma once
#include <cstdint>
#include <vector>

namespace ddp::data {

// The epoch's permutation of [0, n); identical on every machine and compiler
// (own generator and own Fisher-Yates, no std::shuffle).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int epoch);

// This rank's indices for the epoch, in the order they are to be visited.
// done: positions of the permutation already trained (a run resumed
// during the epoch, perhaps at another world size: after S steps of batch
// B at N ranks they are the first S x B x N), dealt as above from there on:
// rank r takes positions done + r, done + r + world, ..., ceil((n - done) /
// world) of them, the tail wrapping around to the start of the
// permutation. With the same world, the indices are those of the
// uninterrupted epoch from step S on. done == n: none (the epoch was
// trained through).
std::vector<int64_t> shard_indices(int64_t n, uint64_t seed, int epoch, int rank, int world, int64_t done = 0);

// This rank's slice of an evaluation set: r, r + world, ... (no padding, so
// the shards add up to exactly n).
std::vector<int64_t> eval_indices(int64_t n, int rank, int world);

}  // namespace ddp::data
