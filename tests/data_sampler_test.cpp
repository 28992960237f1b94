// DistributedSampler semantics: shards are equal, disjoint but for padding,
// cover [0, n), and N ranks x batch B visit exactly what serial batch N*B does.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "common/rng.h"
#include "data/sampler.h"

namespace ddp::data {
namespace {

bool is_permutation_of_range(std::vector<int64_t> v, int64_t n) {
  if (static_cast<int64_t>(v.size()) != n) return false;
  std::sort(v.begin(), v.end());
  for (int64_t i = 0; i < n; ++i)
    if (v[i] != i) return false;
  return true;
}

TEST(SamplerPermutation, IsAPermutation) {
  for (int64_t n : {0, 1, 2, 3, 10, 97, 1000}) {
    EXPECT_TRUE(is_permutation_of_range(epoch_permutation(n, 42, 0), n)) << n;
    EXPECT_TRUE(is_permutation_of_range(epoch_permutation(n, 42, 7), n)) << n;
  }
}

TEST(SamplerPermutation, DeterministicPerSeedAndEpoch) {
  auto a = epoch_permutation(1000, 42, 3);
  EXPECT_EQ(a, epoch_permutation(1000, 42, 3));
  EXPECT_NE(a, epoch_permutation(1000, 42, 4));
  EXPECT_NE(a, epoch_permutation(1000, 43, 3));
  std::vector<int64_t> id(1000);
  std::iota(id.begin(), id.end(), 0);
  EXPECT_NE(a, id);
}

TEST(SamplerPermutation, IsFisherYatesOnSplitMix) {
  // The algorithm spelled out: SplitMix64 seeded by mix_seed(seed, epoch),
  // Fisher-Yates from the back with below(i + 1).
  for (int epoch : {0, 1, 9}) {
    std::vector<int64_t> ref(50);
    std::iota(ref.begin(), ref.end(), 0);
    SplitMix64 g(mix_seed(7, static_cast<uint64_t>(epoch)));
    for (int64_t i = 49; i > 0; --i) std::swap(ref[i], ref[g.below(static_cast<uint64_t>(i) + 1)]);
    EXPECT_EQ(epoch_permutation(50, 7, epoch), ref);
  }
}

TEST(SamplerPermutation, PinnedValues) {
  // Every machine and compiler must shuffle alike; a change here changes runs.
  EXPECT_EQ(epoch_permutation(10, 1, 0), (std::vector<int64_t>{5, 2, 9, 0, 3, 7, 8, 1, 6, 4}));
}

TEST(SamplerPermutation, RoughlyUniform) {
  // Where element 0 lands, over many epochs: every position about equally often.
  const int n = 8, epochs = 8000;
  std::vector<int> count(n, 0);
  for (int e = 0; e < epochs; ++e) {
    auto p = epoch_permutation(n, 5, e);
    ++count[std::find(p.begin(), p.end(), 0) - p.begin()];
  }
  for (int c : count) EXPECT_NEAR(c, epochs / n, 150);
}

TEST(SamplerShard, WorldOfOneIsThePermutation) {
  for (int64_t n : {1, 10, 103})
    for (int epoch : {0, 1, 5}) EXPECT_EQ(shard_indices(n, 9, epoch, 0, 1), epoch_permutation(n, 9, epoch));
}

TEST(SamplerShard, EqualDisjointCoveringShards) {
  for (int world = 1; world <= 8; ++world) {
    for (int64_t n = 10; n <= 103; ++n) {
      const int64_t per = (n + world - 1) / world;
      const int64_t padding = per * world - n;
      std::vector<int64_t> all;
      for (int r = 0; r < world; ++r) {
        auto s = shard_indices(n, 1234, 2, r, world);
        ASSERT_EQ(static_cast<int64_t>(s.size()), per) << "n=" << n << " world=" << world << " rank=" << r;
        for (int64_t i : s) {
          ASSERT_GE(i, 0);
          ASSERT_LT(i, n);
        }
        all.insert(all.end(), s.begin(), s.end());
      }
      // Every index appears; exactly `padding` of them twice (padding < n here).
      std::vector<int> seen(n, 0);
      for (int64_t i : all) ++seen[i];
      int64_t twice = 0;
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_GE(seen[i], 1) << "index " << i << " missed, n=" << n << " world=" << world;
        ASSERT_LE(seen[i], 2);
        twice += seen[i] == 2;
      }
      ASSERT_EQ(twice, padding) << "n=" << n << " world=" << world;
    }
  }
}

TEST(SamplerShard, PaddingWrapsToTheStartOfThePermutation) {
  // PyTorch: indices += indices[:padding]; rank r takes indices[r::world].
  const int64_t n = 10;
  const int world = 4;
  auto perm = epoch_permutation(n, 77, 1);
  std::vector<int64_t> padded = perm;
  padded.insert(padded.end(), perm.begin(), perm.begin() + 2);
  for (int r = 0; r < world; ++r) {
    std::vector<int64_t> expect;
    for (size_t p = r; p < padded.size(); p += world) expect.push_back(padded[p]);
    EXPECT_EQ(shard_indices(n, 77, 1, r, world), expect) << r;
  }
}

TEST(SamplerShard, WorldLargerThanN) {
  const int64_t n = 3;
  const int world = 8;
  auto perm = epoch_permutation(n, 1, 0);
  for (int r = 0; r < world; ++r) {
    auto s = shard_indices(n, 1, 0, r, world);
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0], perm[r % n]);
  }
  EXPECT_TRUE(shard_indices(0, 1, 0, 0, 4).empty());
  EXPECT_TRUE(shard_indices(5, 1, 0, 1, 2, 5).empty()) << "an epoch trained through deals nothing";
}

TEST(SamplerShard, RanksTimesBatchEqualsSerialBigBatch) {
  // The union of N ranks' k-th batches of size B is the k-th serial batch of
  // size N*B: N ranks x batch B train on what serial batch N*B trains on.
  for (int world = 1; world <= 8; ++world) {
    for (int B : {1, 3, 8}) {
      for (int64_t n : {10, 64, 97, 103, 600}) {
        const uint64_t seed = 2024;
        const int epoch = 3;
        auto serial = epoch_permutation(n, seed, epoch);
        // The padded serial order: what the ranks see altogether.
        std::vector<int64_t> padded;
        const int64_t per = (n + world - 1) / world;
        for (int64_t p = 0; p < per * world; ++p) padded.push_back(serial[p % n]);
        std::vector<std::vector<int64_t>> shards;
        for (int r = 0; r < world; ++r) shards.push_back(shard_indices(n, seed, epoch, r, world));
        const int64_t batches = (per + B - 1) / B;
        for (int64_t k = 0; k < batches; ++k) {
          std::multiset<int64_t> from_ranks, from_serial;
          for (int r = 0; r < world; ++r)
            for (int64_t j = k * B; j < std::min<int64_t>((k + 1) * B, per); ++j) from_ranks.insert(shards[r][j]);
          const int64_t lo = k * B * world, hi = std::min<int64_t>((k + 1) * B * world, per * world);
          for (int64_t p = lo; p < hi; ++p) from_serial.insert(padded[p]);
          ASSERT_EQ(from_ranks, from_serial) << "world=" << world << " B=" << B << " n=" << n << " k=" << k;
          // Before the padded tail, that is exactly the serial permutation's batch.
          if (hi <= n) {
            std::multiset<int64_t> plain(serial.begin() + lo, serial.begin() + hi);
            ASSERT_EQ(from_ranks, plain);
          }
        }
      }
    }
  }
}

TEST(SamplerEval, ShardsAddUpToExactlyN) {
  for (int world = 1; world <= 8; ++world) {
    for (int64_t n : {0, 1, 7, 10, 103, 10000}) {
      std::vector<int64_t> all;
      for (int r = 0; r < world; ++r) {
        auto s = eval_indices(n, r, world);
        for (size_t k = 0; k < s.size(); ++k) ASSERT_EQ(s[k], r + static_cast<int64_t>(k) * world);
        all.insert(all.end(), s.begin(), s.end());
      }
      EXPECT_TRUE(is_permutation_of_range(all, n)) << "n=" << n << " world=" << world;
    }
  }
}


// A run resumed during an epoch: with the same world, the indices are the
// uninterrupted epoch's from step S on; at another world, the first S x B x N
// positions (trained before) and the rest dealt to N' ranks cover every
// sample once, plus N''s padding from the start of the permutation.
TEST(SamplerShard, ResumedDuringAnEpochOnTheSameOrAnotherWorld) {
  const int64_t n = 1003;
  const int batch = 8, world = 4, steps_done = 7;
  const int64_t done = int64_t{steps_done} * batch * world;
  for (int r = 0; r < world; ++r) {
    const auto whole = shard_indices(n, 5, 2, r, world);
    const auto rest = shard_indices(n, 5, 2, r, world, done);
    ASSERT_EQ(rest.size(), whole.size() - static_cast<size_t>(steps_done * batch));
    EXPECT_TRUE(std::equal(rest.begin(), rest.end(), whole.begin() + steps_done * batch)) << "rank " << r;
  }
  const auto perm = epoch_permutation(n, 5, 2);
  for (int next : {1, 2, 3}) {
    std::vector<int> count(static_cast<size_t>(n), 0);
    for (int64_t p = 0; p < done; ++p) ++count[static_cast<size_t>(perm[static_cast<size_t>(p)])];
    int64_t dealt = 0;
    for (int r = 0; r < next; ++r)
      for (int64_t i : shard_indices(n, 5, 2, r, next, done)) ++count[static_cast<size_t>(i)], ++dealt;
    const int64_t padding = dealt - (n - done);
    EXPECT_EQ(padding, (next - (n - done) % next) % next) << next << " ranks";
    for (int64_t p = 0; p < n; ++p)
      EXPECT_EQ(count[static_cast<size_t>(perm[static_cast<size_t>(p)])], p < padding ? 2 : 1)
          << next << " ranks, position " << p;
  }
}

}  // namespace
}  // namespace ddp::data
