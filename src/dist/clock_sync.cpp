#include "dist/clock_sync.h"

#include <algorithm>
#include <limits>
#include <string>

#include "common/error.h"
#include "common/hash.h"
#include "common/trace.h"
#include "sys/machine.h"

namespace ddp::dist {

ClockOffset offset_from_readings(std::span<const CollectiveTimes> rank0, std::span<const CollectiveTimes> rank,
                                 bool same_kernel) {
  DDP_ASSERT(rank0.size() == rank.size() && rank.size() >= 2, "clock readings: two equal chains of 2 or more");
  int64_t best_lo = 0, best_hi = 0, best_width = std::numeric_limits<int64_t>::max();
  for (size_t k = 0; k + 1 < rank.size(); ++k) {
    const int64_t hi = rank[k].after_ns - rank0[k].before_ns;          // r left k after 0 entered it
    const int64_t lo = rank[k + 1].before_ns - rank0[k + 1].after_ns;  // 0 left k+1 after r entered it
    if (hi - lo < best_width) {
      best_width = hi - lo;
      best_lo = lo;
      best_hi = hi;
    }
  }
  ClockOffset o;
  o.round_trip_ns = best_width;
  o.measured_ns = best_lo + (best_hi - best_lo) / 2;
  o.same_clock = same_kernel && best_lo <= 0 && 0 <= best_hi;
  o.offset_ns = o.same_clock ? 0 : o.measured_ns;
  o.uncertainty_ns = o.same_clock ? 0 : (best_width + 1) / 2;
  return o;
}

std::vector<ClockOffset> synchronise_clocks(Communicator& comm, int rounds) {
  DDP_ASSERT(rounds >= 1, "synchronise_clocks needs a round");
  const int world = comm.size(), me = comm.rank();
  const size_t n = static_cast<size_t>(rounds) + 1;
  std::vector<CollectiveTimes> mine(n);
  for (auto& t : mine) {
    double token = 0;
    t.before_ns = trace::now_ns();
    comm.allreduce_sum(&token, 1);
    t.after_ns = trace::now_ns();
  }
  // Every rank's row, on every rank: the boot id's hash and the readings
  // relative to the first, as 32-bit halves and small integers (exact in a
  // double; each element of the sum has one non-zero term).
  const uint64_t boot = [] {
    const std::string id = sys::boot_id();
    return id.empty() ? 0 : fnv1a(id.data(), id.size());
  }();
  const auto base = static_cast<uint64_t>(mine[0].before_ns);
  const size_t width = 4 + 2 * n;
  std::vector<double> rows(width * static_cast<size_t>(world), 0.0);
  double* row = rows.data() + width * static_cast<size_t>(me);
  row[0] = static_cast<double>(boot >> 32);
  row[1] = static_cast<double>(boot & 0xffffffffu);
  row[2] = static_cast<double>(base >> 32);
  row[3] = static_cast<double>(base & 0xffffffffu);
  for (size_t k = 0; k < n; ++k) {
    row[4 + 2 * k] = static_cast<double>(mine[k].before_ns - mine[0].before_ns);
    row[5 + 2 * k] = static_cast<double>(mine[k].after_ns - mine[0].before_ns);
  }
  comm.allreduce_sum(rows.data(), rows.size());

  auto readings = [&](int r) {
    const double* x = rows.data() + width * static_cast<size_t>(r);
    const auto b = static_cast<int64_t>((static_cast<uint64_t>(x[2]) << 32) | static_cast<uint64_t>(x[3]));
    std::vector<CollectiveTimes> t(n);
    for (size_t k = 0; k < n; ++k)
      t[k] = {b + static_cast<int64_t>(x[4 + 2 * k]), b + static_cast<int64_t>(x[5 + 2 * k])};
    return t;
  };
  const auto zero = readings(0);
  const bool boot_known = rows[0] != 0 || rows[1] != 0;
  std::vector<ClockOffset> out(static_cast<size_t>(world));
  out[0].same_clock = true;
  for (int r = 1; r < world; ++r) {
    const double* x = rows.data() + width * static_cast<size_t>(r);
    const bool same_kernel = boot_known && x[0] == rows[0] && x[1] == rows[1];
    out[static_cast<size_t>(r)] = offset_from_readings(zero, readings(r), same_kernel);
  }
  return out;
}

}  // namespace ddp::dist
