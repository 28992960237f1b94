// dist::offset_from_readings on synthetic clocks (a known offset, known
// delays), and synchronise_clocks across real Gloo ranks on this machine,
// whose clock is one: every offset must come out exactly 0.
#include <gtest/gtest.h>

#include <vector>

#include "dist/clock_sync.h"
#include "dist_test_util.h"

using namespace ddp::dist;

namespace {

// A chain of collectives as seen by rank 0 and by a rank whose clock reads
// `theta` ns more at the same instant. Collective k: rank 0 enters at
// enter0[k], the rank at enter_r[k] (true time), each leaves `latency`
// after the later of the two entries.
struct Chain {
  std::vector<CollectiveTimes> rank0, rank;
};
Chain chain(int64_t theta, const std::vector<int64_t>& enter0, const std::vector<int64_t>& enter_r,
            const std::vector<int64_t>& latency) {
  Chain c;
  for (size_t k = 0; k < enter0.size(); ++k) {
    const int64_t done = std::max(enter0[k], enter_r[k]) + latency[k];
    c.rank0.push_back({enter0[k], done});
    c.rank.push_back({enter_r[k] + theta, done + theta});
  }
  return c;
}

}  // namespace

TEST(ClockOffset, TheTightestRoundBoundsTheTrueOffset) {
  const int64_t theta = 123'456'789;
  // Round 0-1 is slow (rank 0 late, 500 us latency); round 2-3 is tight.
  const Chain c = chain(theta, {1000, 800'000, 900'000, 901'000}, {1000, 700'000, 900'000, 901'000},
                        {500'000, 500'000, 20'000, 20'000});
  const ClockOffset o = offset_from_readings(c.rank0, c.rank, false);
  EXPECT_FALSE(o.same_clock);
  EXPECT_LE(o.offset_ns - o.uncertainty_ns, theta);
  EXPECT_GE(o.offset_ns + o.uncertainty_ns, theta);
  EXPECT_EQ(o.round_trip_ns, 2 * 20'000 + 1000 - 1000);  // the tight round: two latencies
  EXPECT_EQ(o.uncertainty_ns, 20'000);
  EXPECT_EQ(o.measured_ns, o.offset_ns);
}

TEST(ClockOffset, AsymmetricDelaysStayWithinTheUncertainty) {
  // The rank enters each collective 30 us after rank 0: its wait inflates
  // every round, yet the interval still holds theta.
  for (int64_t theta : {-5'000'000'000LL, 0LL, 7LL, 9'000'000LL}) {
    const Chain c = chain(theta, {0, 100'000, 200'000}, {30'000, 130'000, 230'000}, {5'000, 5'000, 5'000});
    const ClockOffset o = offset_from_readings(c.rank0, c.rank, false);
    EXPECT_LE(o.offset_ns - o.uncertainty_ns, theta) << theta;
    EXPECT_GE(o.offset_ns + o.uncertainty_ns, theta) << theta;
  }
}

TEST(ClockOffset, OneKernelMeansOffsetZeroWhenTheMeasurementAllowsIt) {
  const Chain same = chain(0, {0, 50'000}, {10'000, 60'000}, {3'000, 3'000});
  const ClockOffset o = offset_from_readings(same.rank0, same.rank, true);
  EXPECT_TRUE(o.same_clock);
  EXPECT_EQ(o.offset_ns, 0);
  EXPECT_EQ(o.uncertainty_ns, 0);
  // The same boot id but a clock the measurement places elsewhere (a time
  // namespace): the measurement wins.
  const Chain shifted = chain(1'000'000'000, {0, 50'000}, {10'000, 60'000}, {3'000, 3'000});
  const ClockOffset s = offset_from_readings(shifted.rank0, shifted.rank, true);
  EXPECT_FALSE(s.same_clock);
  EXPECT_NEAR(static_cast<double>(s.offset_ns), 1e9, static_cast<double>(s.uncertainty_ns));
}

TEST(ClockSync, RanksOnThisMachineShareOneClock) {
  for (int world : {2, 3}) EXPECT_EQ(launch_local(dist_test::worker_job(world, {"clocks"})), 0) << world << " ranks";
}
