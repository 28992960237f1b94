#include "dist/bucket_layout.h"

#include <algorithm>

#include "common/error.h"

namespace ddp::dist {

BucketBounds bucket_layout(size_t count, size_t bucket_bytes, const std::vector<size_t>& segments) {
  const size_t per = bucket_bytes / sizeof(float) > 0 ? bucket_bytes / sizeof(float) : 1;
  BucketBounds buckets;
  if (segments.empty()) {
    for (size_t end = count; end > 0;) {
      const size_t begin = end > per ? end - per : 0;
      buckets.emplace_back(begin, end);
      end = begin;
    }
    return buckets;
  }
  std::vector<size_t> starts(segments);
  std::sort(starts.begin(), starts.end());
  DDP_ASSERT(starts.front() == 0 && starts.back() < count, "segments must start at 0 and lie inside the buffer");
  size_t end = count;
  for (auto it = starts.rbegin(); it != starts.rend(); ++it) {
    if (end - *it >= per || *it == 0) {  // the bucket [*it, end) is full (or the buffer is done)
      buckets.emplace_back(*it, end);
      end = *it;
    }
  }
  return buckets;
}

}  // namespace ddp::dist
