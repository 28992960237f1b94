#include "train/wait_split.h"

#include <algorithm>
#include <vector>

#include "common/error.h"
#include "train/epoch_stats.h"

namespace ddp::train {

namespace {

bool ran(const dist::BucketTiming& t) { return t.entry_ns != 0 || t.wait_end_ns != 0; }

int64_t overlap(int64_t a0, int64_t a1, int64_t b0, int64_t b1) { return std::max<int64_t>(0, std::min(a1, b1) - std::max(a0, b0)); }

}  // namespace

WaitSplit split_step_wait(std::span<const dist::BucketTiming> mine, std::span<const int64_t> latest_entry_ns) {
  DDP_ASSERT(mine.size() == latest_entry_ns.size(), "split_step_wait: one latest entry per bucket");
  int64_t waited = 0, later = 0;
  for (const auto& w : mine) {
    if (!ran(w)) continue;
    waited += w.wait_end_ns - w.wait_begin_ns;
    // The buckets' all-reduces run one after another; each waits for the
    // last rank over [entry, latest entry).
    for (size_t b = 0; b < mine.size(); ++b)
      if (ran(mine[b]))
        later += overlap(w.wait_begin_ns, w.wait_end_ns, mine[b].entry_ns, std::max(mine[b].entry_ns, latest_entry_ns[b]));
  }
  return {1e-9 * static_cast<double>(later), 1e-9 * static_cast<double>(waited - later)};
}

WaitSplit split_epoch_wait(dist::Communicator& comm, int64_t offset_ns, std::span<const dist::BucketTiming> timings,
                           size_t buckets, int64_t first, int64_t end) {
  WaitSplit total;
  if (end <= first || buckets == 0) return total;
  const auto steps = static_cast<size_t>(end - first);
  DDP_ASSERT(timings.size() >= static_cast<size_t>(end) * buckets, "split_epoch_wait: a timing per step and bucket");
  // This rank's timings on rank 0's clock.
  std::vector<dist::BucketTiming> mine(timings.begin() + static_cast<long>(static_cast<size_t>(first) * buckets),
                                       timings.begin() + static_cast<long>(static_cast<size_t>(end) * buckets));
  std::vector<int64_t> entries(mine.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    if (!ran(mine[i])) continue;
    for (int64_t* t : {&mine[i].entry_ns, &mine[i].exit_ns, &mine[i].wait_begin_ns, &mine[i].wait_end_ns}) *t -= offset_ns;
    entries[i] = mine[i].entry_ns;
  }
  const std::vector<int64_t> all = gather_int64_rows(comm, entries.data(), entries.size());
  std::vector<int64_t> latest(buckets);
  for (size_t s = 0; s < steps; ++s) {
    for (size_t b = 0; b < buckets; ++b) {
      latest[b] = entries[s * buckets + b];
      for (int r = 0; r < comm.size(); ++r) latest[b] = std::max(latest[b], all[static_cast<size_t>(r) * mine.size() + s * buckets + b]);
    }
    const WaitSplit w = split_step_wait({mine.data() + s * buckets, buckets}, latest);
    total.later_rank_s += w.later_rank_s;
    total.transfer_s += w.transfer_s;
  }
  return total;
}

}  // namespace ddp::train
