// dist::bucket_layout, the pure rule, against the buckets GradSync actually
// cuts (GradSync::bucket): the two must agree for every buffer, bucket size
// and segmentation, since the trainer's results, the scaling model and the
// benchmarks use the function instead of a GradSync.
#include <gtest/gtest.h>

#include <vector>

#include "common/error.h"
#include "dist/bucket_layout.h"
#include "dist/grad_sync.h"

using namespace ddp;
using namespace ddp::dist;

namespace {

BucketBounds buckets_of(const GradSync& sync) {
  BucketBounds out;
  for (size_t i = 0; i < sync.num_buckets(); ++i) out.push_back(sync.bucket(i));
  return out;
}

}  // namespace

TEST(BucketLayout, AgreesWithGradSyncForEveryBucketSizeAndSegmentation) {
  // The model's layout (conv1, conv2, fc1, fc2, then the stop flag), a few
  // uneven segmentations, and none at all.
  const std::vector<std::pair<size_t, std::vector<size_t>>> buffers = {
      {421643, {0, 320, 18816, 420352, 421642}},
      {421643, {421642, 0, 18816, 320, 420352}},  // any order
      {1000, {0, 1, 2, 500, 999}},
      {1000, {0}},
      {1000, {}},
      {7, {}},
      {0, {}}};
  LocalCommunicator local;
  for (const auto& [count, segments] : buffers) {
    std::vector<float> grads(count + 1);
    for (size_t bytes : {size_t{1}, size_t{4}, size_t{12}, size_t{1024}, size_t{64} << 10, size_t{1} << 30}) {
      SCOPED_TRACE("count " + std::to_string(count) + ", " + std::to_string(segments.size()) + " segments, " +
                   std::to_string(bytes) + " bytes");
      GradSync sync(local, grads.data(), count, bytes, segments);
      const BucketBounds layout = bucket_layout(count, bytes, segments);
      EXPECT_EQ(layout, buckets_of(sync));
      // And the layout is a partition of the buffer, from its end.
      size_t end = count;
      for (const auto& [b, e] : layout) {
        EXPECT_EQ(e, end);
        EXPECT_LT(b, e);
        end = b;
      }
      EXPECT_EQ(end, 0u);
    }
  }
}

TEST(BucketLayout, WholeSegmentsUntilTheBucketIsFull) {
  // 64 KiB = 16384 floats: fc2 + the stop flag (1291) is too small alone,
  // so fc1 joins it; conv2 (18496) fills one; conv1 closes the buffer.
  const BucketBounds b = bucket_layout(421643, 64 << 10, {0, 320, 18816, 420352, 421642});
  const BucketBounds want = {{18816, 421643}, {320, 18816}, {0, 320}};
  EXPECT_EQ(b, want);
}

TEST(BucketLayout, SegmentsMustStartAtZeroAndLieInside) {
  EXPECT_THROW(bucket_layout(100, 64, {10, 50}), std::logic_error);
  EXPECT_THROW(bucket_layout(100, 64, {0, 100}), std::logic_error);
}
