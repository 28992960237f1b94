#include "data/sampler.h"

#include <numeric>
#include <utility>

#include "common/error.h"
#include "common/rng.h"

namespace ddp::data {

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int epoch) {
  DDP_ASSERT(n >= 0, "epoch_permutation: n must be >= 0");
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  // Fisher-Yates, from the back: position i swaps with a uniform j in [0, i].
  SplitMix64 rng(mix_seed(seed, static_cast<uint64_t>(static_cast<int64_t>(epoch))));
  for (int64_t i = n - 1; i > 0; --i) {
    auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

std::vector<int64_t> shard_indices(int64_t n, uint64_t seed, int epoch, int rank, int world, int64_t done) {
  DDP_ASSERT(world >= 1 && rank >= 0 && rank < world, "shard_indices: need 0 <= rank < world");
  DDP_ASSERT(n >= 0, "shard_indices: n must be >= 0");
  DDP_ASSERT(done >= 0 && done <= n, "shard_indices: need 0 <= done <= n");
  if (n == 0 || done == n) return {};
  std::vector<int64_t> perm = epoch_permutation(n, seed, epoch);
  if (world == 1 && done == 0) return perm;
  const int64_t per_rank = (n - done + world - 1) / world;
  std::vector<int64_t> out(static_cast<size_t>(per_rank));
  // Position p of the padded permutation is perm[p % n]: the tail wraps
  // around to the start (more than once if world > n), as PyTorch pads.
  for (int64_t k = 0; k < per_rank; ++k) out[k] = perm[(done + rank + k * world) % n];
  return out;
}

std::vector<int64_t> eval_indices(int64_t n, int rank, int world) {
  DDP_ASSERT(world >= 1 && rank >= 0 && rank < world, "eval_indices: need 0 <= rank < world");
  DDP_ASSERT(n >= 0, "eval_indices: n must be >= 0");
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(n / world + 1));
  for (int64_t i = rank; i < n; i += world) out.push_back(i);
  return out;
}

}  // namespace ddp::data
