// One clock for all ranks: how far each rank's CLOCK_MONOTONIC is from rank
// 0's, so that their timestamps can be compared (a trace's lanes, the time
// a rank waited for a later one).
//
// Ranks on one machine share CLOCK_MONOTONIC: their offset is exactly 0.
// Across machines it is estimated the way NTP does (Mills, RFC 5905, the
// on-wire protocol), with collectives instead of messages: every rank reads
// its clock just before and just after each of a chain of tiny all-reduces.
// An all-reduce cannot return on rank r before rank 0 entered it, nor on
// rank 0 before rank r entered it, so two consecutive all-reduces bound the
// offset theta = clock_r - clock_0 (at the same instant):
//
//   before_next_r - after_next_0  <=  theta  <=  after_r - before_0
//
// an interval as wide as that round's round trip. The round with the
// narrowest interval is kept (the classic minimum-RTT filter); its middle is
// the estimate, half its width the uncertainty. The bound holds whatever
// the network does, provided the clocks do not drift apart measurably over
// the run (quartz: about 1e-5, 10 us a second).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "dist/communicator.h"

namespace ddp::dist {

// One rank's clock against rank 0's (nanoseconds).
struct ClockOffset {
  int64_t offset_ns = 0;       // to apply: this rank's time minus offset_ns is rank 0's time
  int64_t uncertainty_ns = 0;  // the true offset is within offset_ns +- this (0 with same_clock)
  bool same_clock = false;     // the same kernel as rank 0 (boot id), and the measurement allows 0: offset 0
  int64_t measured_ns = 0;     // the estimate from the tightest round (kept as a check when same_clock)
  int64_t round_trip_ns = 0;   // that round's round trip: the width of the interval
};

// The clock readings around one collective on one rank.
struct CollectiveTimes {
  int64_t before_ns = 0, after_ns = 0;
};

// The offset of a rank from the readings around the same chain of
// collectives on rank 0 and on it (equal lengths, at least 2). same_kernel:
// both report the same boot id.
ClockOffset offset_from_readings(std::span<const CollectiveTimes> rank0, std::span<const CollectiveTimes> rank,
                                 bool same_kernel);

// Every rank's offset, [rank], on every rank: a collective that all ranks
// call, `rounds` + 1 all-reduces of one double and one gather. Throws what
// the communicator throws.
std::vector<ClockOffset> synchronise_clocks(Communicator& comm, int rounds = 16);

}  // namespace ddp::dist
