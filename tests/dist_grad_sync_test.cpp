// GradSync: bucket layout, overlap (the all-reduce starts before finish),
// the thread rule, error propagation, world of one; and the exact average
// across 2 and 3 real processes over Gloo.
#include <dirent.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "dist/grad_sync.h"
#include "dist/launcher.h"
#include "dist_test_util.h"

using namespace ddp;
using namespace ddp::dist;
using namespace dist_test;

namespace {

// Pretends to be one rank of `world` identical ranks: the sum multiplies by
// the world size. Records every call and the thread that made it.
class FakeComm final : public Communicator {
 public:
  explicit FakeComm(int world, const float* base) : world_(world), base_(base) {}
  int rank() const override { return 0; }
  int size() const override { return world_; }
  std::string backend() const override { return "fake"; }
  void allreduce_sum(float* data, size_t count) override {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back({static_cast<size_t>(data - base_), count});
    timespec t0{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    const long cpu_ms_at_start = t0.tv_sec * 1000 + t0.tv_nsec / 1000000;
    threads.push_back(std::this_thread::get_id());
    if (throw_on_call >= 0 && static_cast<int>(calls.size()) == throw_on_call + 1)
      throw UserError("rank 0: lost contact with a peer during all-reduce", "fake hint");
    for (size_t i = 0; i < count; ++i) data[i] *= static_cast<float>(world_);
    for (timespec t{}; busy_ms > 0;) {  // burn busy_ms of this thread's CPU time (wall time may be longer)
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
      if (t.tv_sec * 1000 + t.tv_nsec / 1000000 >= cpu_ms_at_start + busy_ms) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    cv.notify_all();
  }
  void allreduce_sum(double*, size_t) override { ADD_FAILURE() << "double all-reduce"; }
  void broadcast(float*, size_t, int) override { ADD_FAILURE() << "broadcast"; }
  void barrier() override { ADD_FAILURE() << "barrier"; }

  bool wait_calls(size_t n, double seconds) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::duration<double>(seconds),
                       [&] { return calls.size() >= n; });
  }

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<size_t, size_t>> calls;
  std::vector<std::thread::id> threads;
  int throw_on_call = -1;
  int busy_ms = 0, sleep_ms = 0;  // per call: CPU time burnt, then time asleep

 private:
  int world_;
  const float* base_;
};

int thread_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

void ready_all(GradSync& s, size_t count, std::vector<size_t> pieces) {
  size_t hi = count, k = 0;
  while (hi > 0) {
    size_t n = std::min(hi, pieces[k++ % pieces.size()]);
    s.ready(hi - n, n);
    hi -= n;
  }
}

}  // namespace

TEST(GradSync, BucketsAreCutFromTheEnd) {
  std::vector<float> g(10);
  FakeComm comm(2, g.data());
  GradSync s(comm, g.data(), g.size(), 16);  // 4 floats per bucket
  ASSERT_EQ(s.num_buckets(), 3u);
  EXPECT_EQ(s.bucket(0), (std::pair<size_t, size_t>{6, 10}));
  EXPECT_EQ(s.bucket(1), (std::pair<size_t, size_t>{2, 6}));
  EXPECT_EQ(s.bucket(2), (std::pair<size_t, size_t>{0, 2}));

  GradSync exact(comm, g.data(), g.size(), 40);
  EXPECT_EQ(exact.num_buckets(), 1u);
  GradSync larger(comm, g.data(), g.size(), 1 << 20);
  EXPECT_EQ(larger.num_buckets(), 1u);
  EXPECT_EQ(larger.bucket(0), (std::pair<size_t, size_t>{0, 10}));
  GradSync tiny(comm, g.data(), g.size(), 3);  // less than a float: one float per bucket
  EXPECT_EQ(tiny.num_buckets(), 10u);
  GradSync odd(comm, g.data(), g.size(), 13);  // rounded down to 3 floats
  EXPECT_EQ(odd.num_buckets(), 4u);
  EXPECT_EQ(odd.bucket(3), (std::pair<size_t, size_t>{0, 1}));
}

// The all-reduce of a finished bucket starts while "backward" still runs,
// on one thread that is not the caller's; buckets go out last-first.
TEST(GradSync, AllreduceOfACompleteBucketStartsBeforeFinish) {
  const size_t count = 1000;
  std::vector<float> g(count);
  FakeComm comm(4, g.data());
  GradSync s(comm, g.data(), count, 100 * sizeof(float));
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < count; ++i) g[i] = static_cast<float>(i % 17) + step;
    const size_t before = comm.calls.size();
    s.ready(950, 50);                           // half of bucket 0: nothing to do yet
    s.ready(850, 100);                          // completes bucket 0 [900, 1000)
    EXPECT_TRUE(comm.wait_calls(before + 1, 5.0)) << "bucket 0 not started before finish()";
    s.ready(0, 850);                            // everything else
    double waited = s.finish();
    EXPECT_GE(waited, 0.0);
    ASSERT_EQ(comm.calls.size(), before + 10);
    for (size_t b = 0; b < 10; ++b)
      EXPECT_EQ(comm.calls[before + b], (std::pair<size_t, size_t>{900 - 100 * b, 100}));
    for (size_t i = 0; i < count; ++i)
      ASSERT_EQ(g[i] * s.average_scale(), static_cast<float>(i % 17) + step) << i;  // (4 x) / 4
  }
  for (auto id : comm.threads) {
    EXPECT_NE(id, std::this_thread::get_id());
    EXPECT_EQ(id, comm.threads[0]);
  }
}

TEST(GradSync, LeavesTheSumAndTheReciprocalOfWorldSizeGivesTheAverage) {
  const size_t count = 777;
  std::vector<float> g(count);
  FakeComm comm(3, g.data());
  GradSync s(comm, g.data(), count, 64);
  EXPECT_EQ(s.average_scale(), 1.0f / 3.0f);
  for (size_t i = 0; i < count; ++i) g[i] = 0.1f * static_cast<float>(i) - 3.7f;
  std::vector<float> want(count);
  for (size_t i = 0; i < count; ++i) want[i] = g[i] * 3.0f;
  ready_all(s, count, {5, 1, 300, 2});
  s.finish();
  for (size_t i = 0; i < count; ++i) ASSERT_EQ(g[i], want[i]) << i;
  EXPECT_GE(s.last_step_comm_seconds(), 0.0);
}

// finish(on_bucket) hands each bucket to the caller as soon as it is summed,
// last slice first, on the caller's thread: the optimizer steps the first
// buckets while the last ones are still in flight.
TEST(GradSync, FinishHandsEachSummedBucketToTheCallerInOrder) {
  const size_t count = 1000;
  std::vector<float> g(count);
  FakeComm comm(2, g.data());
  GradSync s(comm, g.data(), count, 300 * sizeof(float));
  ASSERT_EQ(s.num_buckets(), 4u);
  for (int step = 0; step < 2; ++step) {
    for (size_t i = 0; i < count; ++i) g[i] = static_cast<float>(i);
    ready_all(s, count, {37, 400});
    std::vector<std::pair<size_t, size_t>> seen;
    bool summed = true, caller = true;
    s.finish([&](size_t lo, size_t hi) {
      seen.push_back({lo, hi});
      caller = caller && std::this_thread::get_id() != comm.threads.at(0);
      for (size_t i = lo; i < hi; ++i) summed = summed && g[i] == 2.0f * static_cast<float>(i);
    });
    EXPECT_EQ(seen, (std::vector<std::pair<size_t, size_t>>{{700, 1000}, {400, 700}, {100, 400}, {0, 100}}));
    EXPECT_TRUE(summed) << "a bucket was handed over before its all-reduce was done";
    EXPECT_TRUE(caller);
  }
  // After a failed bucket, finish() rethrows once no bucket is in flight;
  // buckets after the failure are never handed over.
  comm.throw_on_call = static_cast<int>(comm.calls.size()) + 1;
  ready_all(s, count, {100});
  std::vector<size_t> handed;
  EXPECT_THROW(s.finish([&](size_t lo, size_t) { handed.push_back(lo); }), UserError);
  EXPECT_EQ(handed, std::vector<size_t>{700});
}

// The communication thread's CPU time is counted apart from its wall time:
// a peer that makes it wait asleep costs the cores nothing.
TEST(GradSync, CountsTheCommunicationThreadsCpuApartFromItsWallTime) {
  std::vector<float> g(100);
  FakeComm comm(2, g.data());
  GradSync s(comm, g.data(), g.size(), 1 << 20);  // one bucket
  comm.busy_ms = 30;
  ready_all(s, g.size(), {100});
  s.finish();
  EXPECT_GE(s.last_step_comm_seconds(), 0.025);
  EXPECT_GE(s.last_step_comm_cpu_seconds(), 0.029);
  EXPECT_LE(s.last_step_comm_cpu_seconds(), s.last_step_comm_seconds() + 0.002);

  comm.busy_ms = 0;
  comm.sleep_ms = 30;
  ready_all(s, g.size(), {100});
  s.finish();
  EXPECT_GE(s.last_step_comm_seconds(), 0.025);
  EXPECT_LT(s.last_step_comm_cpu_seconds(), 0.010);  // per step, not accumulated
}

TEST(GradSync, WorldOfOneStartsNoThreadAndLeavesTheBuffer) {
  std::vector<float> g = {1.5f, -2, 3, 4, 5};
  LocalCommunicator local;
  int threads_before = thread_count();
  GradSync s(local, g.data(), g.size(), 8);
  EXPECT_EQ(thread_count(), threads_before);
  ready_all(s, g.size(), {2});
  double waited = s.finish();
  EXPECT_LT(waited, 1e-3);
  EXPECT_EQ(s.last_step_comm_seconds(), 0.0);
  EXPECT_EQ(s.last_step_comm_cpu_seconds(), 0.0);
  EXPECT_EQ(g, (std::vector<float>{1.5f, -2, 3, 4, 5}));

  std::vector<float> g2(5);
  FakeComm two(2, g2.data());
  GradSync threaded(two, g2.data(), g2.size(), 8);
  EXPECT_EQ(thread_count(), threads_before + 1);
  EXPECT_EQ(s.thread_id(), 0);
  // The communication thread's kernel id, to favour it: one of ours, not the caller.
  EXPECT_NE(threaded.thread_id(), 0);
  EXPECT_NE(threaded.thread_id(), static_cast<int>(::gettid()));
  EXPECT_EQ(::access(("/proc/self/task/" + std::to_string(threaded.thread_id())).c_str(), F_OK), 0);
}

// Overlap::none: no thread; ready() only keeps count, and finish() sums
// every bucket on the caller's thread, last slice first, handing each to
// on_bucket as soon as it is summed; all of it counts as waiting.
TEST(GradSync, WithoutOverlapFinishSumsEveryBucketOnTheCallersThread) {
  const size_t count = 1000;
  std::vector<float> g(count);
  FakeComm comm(2, g.data());
  const int threads_before = thread_count();
  GradSync s(comm, g.data(), count, 300 * sizeof(float), {}, Compression::none, Overlap::none);
  EXPECT_EQ(thread_count(), threads_before);
  EXPECT_EQ(s.thread_id(), 0);
  EXPECT_EQ(s.overlap(), Overlap::none);
  comm.busy_ms = 5;
  for (int step = 0; step < 2; ++step) {
    for (size_t i = 0; i < count; ++i) g[i] = static_cast<float>(i) + step;
    const size_t before = comm.calls.size();
    ready_all(s, count, {37, 400});
    EXPECT_EQ(comm.calls.size(), before) << "an all-reduce started before finish()";
    std::vector<std::pair<size_t, size_t>> seen;
    bool summed = true;
    const double waited = s.finish([&](size_t lo, size_t hi) {
      seen.push_back({lo, hi});
      summed = summed && comm.calls.size() == before + seen.size();  // this bucket's sum, no later one
      for (size_t i = lo; i < hi; ++i) summed = summed && g[i] == 2.0f * (static_cast<float>(i) + step);
    });
    EXPECT_EQ(seen, (std::vector<std::pair<size_t, size_t>>{{700, 1000}, {400, 700}, {100, 400}, {0, 100}}));
    EXPECT_TRUE(summed);
    EXPECT_GE(waited, 4 * 0.004);  // every bucket's all-reduce is waited for
    EXPECT_GE(s.last_step_comm_seconds(), 4 * 0.004);
    EXPECT_LE(s.last_step_comm_seconds(), waited + 1e-3);
    EXPECT_GE(s.last_step_comm_cpu_seconds(), 4 * 0.004);
    EXPECT_LT(s.last_step_comm_cpu_seconds(), 4 * 0.005 + 0.015);  // per step, not accumulated
  }
  for (auto id : comm.threads) EXPECT_EQ(id, std::this_thread::get_id());

  // A failed bucket's error comes out of finish() as it was thrown; no later
  // bucket is tried or handed over, and the next step starts afresh.
  comm.busy_ms = 0;
  comm.throw_on_call = static_cast<int>(comm.calls.size()) + 1;
  ready_all(s, count, {100});
  std::vector<size_t> handed;
  try {
    s.finish([&](size_t lo, size_t) { handed.push_back(lo); });
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "rank 0: lost contact with a peer during all-reduce");
  }
  EXPECT_EQ(handed, std::vector<size_t>{700});
  EXPECT_EQ(comm.calls.size(), static_cast<size_t>(comm.throw_on_call) + 1);
}

// bf16 compression without a thread: the same rounding, on the caller.
TEST(GradSync, WithoutOverlapBf16SumsOnTheCallersThread) {
  const size_t count = 300;
  std::vector<float> g(count);
  FakeComm comm(2, g.data());
  GradSync s(comm, g.data(), count, 64 * sizeof(float), {}, Compression::bf16, Overlap::none);
  for (size_t i = 0; i < count; ++i) g[i] = static_cast<float>(i % 50) + 1.00390625f;  // not a bf16 value
  ready_all(s, count, {count});
  s.finish();
  for (size_t i = 0; i < count; ++i) ASSERT_EQ(g[i], 2.0f * (static_cast<float>(i % 50) + 1.0f)) << i;
  ASSERT_FALSE(comm.threads.empty());
  for (auto id : comm.threads) EXPECT_EQ(id, std::this_thread::get_id());
}

// --overlap auto: no thread for MPI when the ranks use every core exactly.
TEST(GradSync, AutoOverlapDropsTheThreadOnlyForMpiWhenEveryCoreComputes) {
  EXPECT_EQ(choose_overlap("auto", "mpi", 2, 2), Overlap::none);
  EXPECT_EQ(choose_overlap("auto", "mpi", 1, 2), Overlap::thread);  // a spare core runs the thread
  EXPECT_EQ(choose_overlap("auto", "mpi", 4, 2), Overlap::thread);  // oversubscribed
  EXPECT_EQ(choose_overlap("auto", "gloo", 2, 2), Overlap::thread);
  EXPECT_EQ(choose_overlap("thread", "mpi", 2, 2), Overlap::thread);
  EXPECT_EQ(choose_overlap("none", "gloo", 1, 8), Overlap::none);
  EXPECT_THROW(choose_overlap("sometimes", "mpi", 2, 2), UserError);
  EXPECT_STREQ(overlap_name(Overlap::none), "none");
  EXPECT_STREQ(overlap_name(Overlap::thread), "thread");
}

TEST(GradSync, CommunicationErrorIsRethrownAsIsAndLaterBucketsSkipped) {
  const size_t count = 100;
  std::vector<float> g(count, 1.0f);
  FakeComm comm(2, g.data());
  comm.throw_on_call = 1;  // the second bucket fails
  GradSync s(comm, g.data(), count, 10 * sizeof(float));
  ready_all(s, count, {7});
  try {
    s.finish();
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "rank 0: lost contact with a peer during all-reduce");
    EXPECT_EQ(e.hint(), "fake hint");
  }
  EXPECT_EQ(comm.calls.size(), 2u);
}

TEST(GradSync, ReadyRangesMustArriveLastFirstAndCoverTheBuffer) {
  std::vector<float> g(10);
  FakeComm comm(2, g.data());
  {
    GradSync s(comm, g.data(), g.size(), 16);
    EXPECT_THROW(s.ready(0, 5), std::logic_error);  // not the end of the buffer
  }
  {
    GradSync s(comm, g.data(), g.size(), 16);
    s.ready(5, 5);
    EXPECT_THROW(s.ready(6, 2), std::logic_error);  // overlaps
    EXPECT_THROW(s.ready(0, 4), std::logic_error);  // leaves a gap
    EXPECT_THROW(s.finish(), std::logic_error);     // [0, 5) never ready
    s.ready(0, 5);
    s.finish();
  }
  {
    GradSync s(comm, g.data(), g.size(), 16);
    EXPECT_THROW(s.ready(8, 5), std::logic_error);  // past the end
  }
}

// The real thing: 2 and 3 processes over Gloo, bucket sizes smaller than,
// equal to and larger than the buffer, uneven ready() ranges that differ per
// rank and per step; each rank checks the exact average.
TEST(GradSync, ExactAverageAcrossTwoAndThreeGlooRanks) {
  const size_t model = 421642;
  struct Case {
    size_t count, bucket_bytes;
  } cases[] = {
      {model, 256 * 1024},           // 7 buckets
      {model, model * 4},            // exactly one bucket
      {model, model * 4 * 2 + 3},    // larger than the buffer
      {12345, 1000},                 // 50 small buckets
  };
  for (const char* algorithm : {"ring", "bcube"}) {
    for (int world : {2, 3}) {
      for (auto c : cases) {
        auto job = worker_job(world, {"gradsync", std::to_string(c.count),
                                      std::to_string(c.bucket_bytes), "3"});
        job.env.push_back({"DDP_GLOO_ALGORITHM", algorithm});
        EXPECT_EQ(launch_local(job), 0) << algorithm << " world " << world << " count " << c.count
                                        << " bucket_bytes " << c.bucket_bytes;
      }
    }
  }
}
