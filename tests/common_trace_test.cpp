// trace::Recorder: it records only inside its window of steps, keeps each
// thread's events apart, never grows (a full buffer drops and counts), and
// stops for good once closed.
#include <gtest/gtest.h>

#include "common/trace.h"

using namespace ddp::trace;

TEST(TraceRecorder, RecordsOnlyInsideTheWindow) {
  Recorder r(10, 12, 8, 0);
  r.begin_step(9);
  EXPECT_FALSE(r.armed());
  r.record(Thread::compute, Kind::data, 1, 2);
  EXPECT_TRUE(r.events(Thread::compute).empty());
  r.begin_step(10);
  EXPECT_TRUE(r.armed());
  r.record(Thread::compute, Kind::forward, 100, 150, 3);
  r.record(Thread::comm, Kind::allreduce, 120, 200, 0, 4096);
  EXPECT_FALSE(r.window_complete(10));
  r.begin_step(11);
  r.record(Thread::compute, Kind::step, 300, 400);
  EXPECT_TRUE(r.window_complete(11));
  r.close();
  EXPECT_FALSE(r.armed());
  r.begin_step(11);  // a closed recorder stays closed
  r.record(Thread::compute, Kind::data, 500, 600);

  const auto compute = r.events(Thread::compute);
  ASSERT_EQ(compute.size(), 2u);
  EXPECT_EQ(compute[0].kind, Kind::forward);
  EXPECT_EQ(compute[0].start_ns, 100);
  EXPECT_EQ(compute[0].dur_ns, 50);
  EXPECT_EQ(compute[0].arg[0], 3);
  EXPECT_EQ(compute[0].step, 10);
  EXPECT_EQ(compute[1].step, 11);
  const auto comm = r.events(Thread::comm);
  ASSERT_EQ(comm.size(), 1u);
  EXPECT_EQ(comm[0].thread, Thread::comm);
  EXPECT_EQ(comm[0].arg[1], 4096);
  EXPECT_EQ(r.dropped(), 0u);
}

TEST(TraceRecorder, AFullBufferDropsAndCounts) {
  Recorder r(0, 1, 3, 1);  // 4 events per thread
  EXPECT_EQ(r.capacity_per_thread(), 4u);
  r.begin_step(0);
  for (int i = 0; i < 10; ++i) r.record(Thread::compute, Kind::data, i, i + 1);
  EXPECT_EQ(r.events(Thread::compute).size(), 4u);
  EXPECT_EQ(r.events(Thread::compute).back().start_ns, 3);
  EXPECT_EQ(r.dropped(), 6u);
}

TEST(TraceRecorder, ClockIsTheSteadyClock) {
  const int64_t a = now_ns();
  const int64_t b = ns(std::chrono::steady_clock::now());
  const int64_t c = now_ns();
  EXPECT_LE(a, b);
  EXPECT_LE(b, c);
}
