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
std::vector<int64_t> shard_indices(int64_t n, uint64_t seed, int epoch, int rank, int world);

// This rank's slice of an evaluation set: r, r + world, ... (no padding, so
// the shards add up to exactly n).
std::vector<int64_t> eval_indices(int64_t n, int rank, int world);

}  // namespace ddp::data
