// The pieces of --trace in src/train: the window of steps, the split of
// the all-reduce wait, and the trace document made from two ranks' events.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "common/error.h"
#include "train/trace_file.h"
#include "train/trace_window.h"
#include "train/wait_split.h"
#include "trace_test_util.h"

using namespace ddp;
using namespace ddp::train;
using nlohmann::json;

TEST(TraceWindow, ParsesAB) {
  EXPECT_EQ(parse_trace_steps("10:14"), (std::pair<int64_t, int64_t>{10, 14}));
  EXPECT_EQ(parse_trace_steps("0:1"), (std::pair<int64_t, int64_t>{0, 1}));
  for (const char* bad : {"", "10", "10:", ":14", "a:b", "10:14:18", "-1:3", "5:5", "6:5", " 1:2", "1:2x", "0:257"})
    EXPECT_THROW(parse_trace_steps(bad), UserError) << bad;
}

TEST(TraceWindow, DefaultIsFourStepsFromTenOrTheLastFour) {
  TrainConfig cfg;
  auto window = [&](int64_t first, int64_t end) {
    const TraceWindow w = trace_window(cfg, first, end);
    return std::pair<int64_t, int64_t>{w.first, w.end};
  };
  EXPECT_EQ(window(0, 9380), (std::pair<int64_t, int64_t>{10, 14}));
  EXPECT_EQ(window(0, 14), (std::pair<int64_t, int64_t>{10, 14}));
  EXPECT_EQ(window(0, 12), (std::pair<int64_t, int64_t>{8, 12}));   // the last 4
  EXPECT_EQ(window(0, 3), (std::pair<int64_t, int64_t>{0, 3}));     // all there is
  EXPECT_EQ(window(500, 900), (std::pair<int64_t, int64_t>{500, 504}));  // resumed past step 10
  EXPECT_EQ(window(900, 900), (std::pair<int64_t, int64_t>{900, 900}));  // nothing left to train: empty
  cfg.trace_steps = "20:30";
  EXPECT_EQ(window(0, 100), (std::pair<int64_t, int64_t>{20, 30}));
  EXPECT_THROW(trace_window(cfg, 0, 25), UserError);   // ends after the run
  EXPECT_THROW(trace_window(cfg, 21, 100), UserError); // starts before a resumed run's first step
  EXPECT_EQ(steps_per_epoch(60000, 2, 64), 469);
  EXPECT_EQ(steps_per_epoch(60000, 1, 64), 938);
  EXPECT_EQ(steps_per_epoch(10, 3, 64), 1);
}

TEST(WaitSplit, TheWaitDuringTheLaterRanksAbsenceIsLaterRank) {
  // Two buckets. Bucket 0: we enter at 100, the last rank at 400; the
  // training thread waits [300, 500): 100 ns of it while the all-reduce
  // waits for that rank, 100 ns moving bytes. Bucket 1: we are the last to
  // enter (latest == ours); the wait [500, 560) is all transfer.
  const dist::BucketTiming mine[2] = {{100, 480, 300, 500}, {450, 555, 500, 560}};
  const int64_t latest[2] = {400, 450};
  const WaitSplit w = split_step_wait(mine, latest);
  EXPECT_NEAR(w.later_rank_s, 100e-9, 1e-15);
  EXPECT_NEAR(w.transfer_s, 160e-9, 1e-15);
  // A bucket that did not run (a world of one) counts nothing.
  const dist::BucketTiming none[2] = {};
  const WaitSplit z = split_step_wait(none, latest);
  EXPECT_EQ(z.later_rank_s, 0);
  EXPECT_EQ(z.transfer_s, 0);
}

TEST(WaitSplit, AWorldOfOneSplitsItsStepsWithoutPeers) {
  dist::LocalCommunicator local;
  // Two steps, one bucket each; every entry is the latest (we are alone).
  const std::vector<dist::BucketTiming> t = {{10, 50, 20, 60}, {110, 150, 120, 170}};
  const WaitSplit w = split_epoch_wait(local, 0, t, 1, 0, 2);
  EXPECT_EQ(w.later_rank_s, 0);
  EXPECT_NEAR(w.transfer_s, 90e-9, 1e-15);
}

namespace {

trace::Event ev(trace::Kind k, trace::Thread t, int64_t step, int64_t start, int64_t end, int64_t a0 = 0,
                int64_t a1 = 0) {
  trace::Event e;
  e.kind = k;
  e.thread = t;
  e.step = step;
  e.start_ns = start;
  e.dur_ns = end - start;
  e.arg = {a0, a1};
  return e;
}

}  // namespace

TEST(TraceJson, TwoRanksLanesAllReducePartsAndCounters) {
  using K = trace::Kind;
  using T = trace::Thread;
  const int64_t o = 5'000'000'000;  // CLOCK_MONOTONIC of the first event
  std::vector<RankEvent> events = {
      {0, ev(K::step, T::compute, 7, o, o + 10'000)},
      {0, ev(K::forward, T::compute, 7, o, o + 4'000, 2)},
      {0, ev(K::backward, T::compute, 7, o + 4'000, o + 8'000, 4)},
      {0, ev(K::wait, T::compute, 7, o + 8'000, o + 9'000, 0)},
      {0, ev(K::optimizer, T::compute, 7, o + 9'000, o + 10'000, 0)},
      {0, ev(K::allreduce, T::comm, 7, o + 5'000, o + 9'000, 0, 4000)},  // enters at 5 us
      {1, ev(K::step, T::compute, 7, o + 1'000, o + 10'000)},
      {1, ev(K::data, T::compute, 7, o + 1'000, o + 10'000)},
      {1, ev(K::allreduce, T::comm, 7, o + 7'000, o + 9'000, 0, 4000)},  // enters at 7 us: the later rank
  };
  TraceContext c;
  c.backend = "gloo";
  c.allreduce_algorithm = "ring";
  c.overlap = "thread";
  c.steps_per_epoch = 5;
  c.steps = {7, 8};
  c.clocks.resize(2);
  const json doc = trace_json(events, c, 3);
  EXPECT_EQ(doc["otherData"]["dropped_events"], 3);
  EXPECT_EQ(doc["otherData"]["clock"]["origin_ns"], o);
  EXPECT_EQ(trace_test::lanes(doc).size(), 2u);
  EXPECT_TRUE(trace_test::events_outside_steps(doc).empty());
  EXPECT_LE(trace_test::largest_compute_gap(doc).largest_share, 0.0);  // both steps fully covered

  std::map<std::string, json> by_name;  // "<pid> <name>"
  for (const auto& e : doc["traceEvents"])
    if (e["ph"] != "M") by_name[std::to_string(e["pid"].get<int>()) + " " + e["name"].get<std::string>()] = e;
  const json& step = by_name.at("1 step 7");
  EXPECT_EQ(step["tid"], 3);
  EXPECT_EQ(step["args"]["epoch"], 2);
  EXPECT_EQ(step["args"]["step_in_epoch"], 2);
  EXPECT_DOUBLE_EQ(step["dur"].get<double>(), 10.0);  // microseconds
  EXPECT_EQ(by_name.at("1 forward conv2")["cat"], "forward");
  EXPECT_EQ(by_name.at("1 backward fc1")["cat"], "backward");
  const json& ar = by_name.at("1 all-reduce bucket 0");
  EXPECT_EQ(ar["tid"], 2);
  EXPECT_EQ(ar["args"]["bytes"], 4000);
  EXPECT_EQ(ar["args"]["algorithm"], "ring");
  // Rank 0 waited 2 us for rank 1, then moved bytes for 2 us; rank 1 only moved bytes.
  const json& waited = by_name.at("1 wait for rank 1");
  EXPECT_DOUBLE_EQ(waited["ts"].get<double>(), 5.0);
  EXPECT_DOUBLE_EQ(waited["dur"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(by_name.at("1 transfer")["dur"].get<double>(), 2.0);
  EXPECT_EQ(by_name.count("2 wait for rank 1"), 0u);
  EXPECT_DOUBLE_EQ(by_name.at("2 transfer")["dur"].get<double>(), 2.0);
  // Bytes sent by each rank: 2 (N-1)/N of the bucket, at the all-reduce's end.
  const json& sent = by_name.at("1 bytes sent");
  EXPECT_EQ(sent["ph"], "C");
  EXPECT_DOUBLE_EQ(sent["args"]["bytes"].get<double>(), 4000.0);
  EXPECT_DOUBLE_EQ(sent["ts"].get<double>(), 9.0);
}
