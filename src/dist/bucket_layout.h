// Where a flat gradient buffer is cut into all-reduce buckets: the one rule
// GradSync follows, as a pure function, so that whoever needs the layout
// (the trainer's results, the scaling model, the benchmarks) computes it
// without building a GradSync, and cannot disagree with it.
//
// Buckets are cut from the buffer's END (backward produces the last layers'
// gradients first): bucket 0 is the last slice, the last bucket starts at
// element 0. Without segments, buckets are slices of at most bucket_bytes.
// With segments (the offsets where the ranges that backward reports begin:
// one per layer), buckets follow PyTorch DDP's rule: whole segments are
// gathered from the end until a bucket holds at least bucket_bytes; a
// segment is never split, so a bucket never waits for a layer it does not
// need.
#pragma once
#include <cstddef>
#include <utility>
#include <vector>

namespace ddp::dist {

// Bucket i as [first element, one past the last), bucket 0 = the last slice.
using BucketBounds = std::vector<std::pair<size_t, size_t>>;

// count: floats in the buffer. bucket_bytes: rounded down to whole floats
// (at least one). segments: empty, or offsets that include 0 and lie inside
// the buffer, in any order (a violation throws std::logic_error).
BucketBounds bucket_layout(size_t count, size_t bucket_bytes, const std::vector<size_t>& segments = {});

}  // namespace ddp::dist
