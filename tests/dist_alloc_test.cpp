// No heap allocation in GradSync's steady-state step (the all-reduce part of
// the training step; the model's part is tests/nn_alloc_test.cpp): with a
// world of one (LocalCommunicator, as serial training runs), and with a
// 2-rank test double that does no communication (so that what is counted is
// GradSync's own work: its thread hand-off, waiting, scaling, bf16
// conversion), with and without bf16 compression. Over real Gloo ranks the
// count of our code is checked too; Gloo's own allocations (it builds its
// buffers for every all-reduce) are counted apart and printed.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include "alloc_counter.h"
#include "common/trace.h"
#include "dist/gloo_communicator.h"
#include "dist/grad_sync.h"
#include "dist_test_util.h"

using namespace ddp::dist;

namespace {

// A world of `world` ranks in which every collective returns at once.
class SilentComm final : public Communicator {
 public:
  SilentComm(int world, bool own_bf16) : world_(world), own_bf16_(own_bf16) {}
  int rank() const override { return 0; }
  int size() const override { return world_; }
  std::string backend() const override { return "silent"; }
  void allreduce_sum(float*, size_t) override {}
  void allreduce_sum(double*, size_t) override {}
  // Without its own, the default (widen to float, all-reduce, round back) runs.
  void allreduce_sum_bf16(uint16_t* d, size_t n) override {
    if (!own_bf16_) Communicator::allreduce_sum_bf16(d, n);
  }
  void broadcast(float*, size_t, int) override {}
  void barrier() override {}

 private:
  int world_;
  bool own_bf16_;
};

// Forwards to a real communicator; what happens inside its calls counts as
// the library's ("other"), including what Gloo's header-inline code
// (AllreduceOptions) allocates in our binary.
class Attributed final : public Communicator {
 public:
  explicit Attributed(Communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string backend() const override { return inner_.backend(); }
  void allreduce_sum(float* d, size_t n) override {
    alloc_counter::AttributeTo library(alloc_counter::kOther);
    inner_.allreduce_sum(d, n);
  }
  void allreduce_sum(double* d, size_t n) override {
    alloc_counter::AttributeTo library(alloc_counter::kOther);
    inner_.allreduce_sum(d, n);
  }
  void allreduce_sum_bf16(uint16_t* d, size_t n) override {
    alloc_counter::AttributeTo library(alloc_counter::kOther);
    inner_.allreduce_sum_bf16(d, n);
  }
  void broadcast(float* d, size_t n, int root) override { inner_.broadcast(d, n, root); }
  void barrier() override { inner_.barrier(); }

 private:
  Communicator& inner_;
};

// The model's gradient buffer as the trainer lays it out: the layers
// (conv1, conv2, fc1, fc2: weight then bias) and the stop flag after them.
constexpr size_t kParams = 421642;
const std::vector<size_t> kSegments = {0, 320, 18816, 420352, kParams};  // where each begins

// One step as the trainer makes it: the stop flag, then the layers last-first.
void step(GradSync& sync) {
  sync.ready(kParams, 1);
  for (size_t k = kSegments.size() - 1; k-- > 0;) sync.ready(kSegments[k], kSegments[k + 1] - kSegments[k]);
  sync.finish();
}

// recorder: armed over the counted steps (null: no tracing).
alloc_counter::Counts count_steps(Communicator& comm, Compression compression, int steps = 20,
                                  ddp::trace::Recorder* recorder = nullptr, const PowerSgdOptions& powersgd = {}) {
  std::vector<float> g(kParams + 1, 0.25f);
  GradSync sync(comm, g.data(), g.size(), 64 * 1024, kSegments, compression, Overlap::thread, powersgd);
  for (int s = 0; s < 3; ++s) step(sync);  // warm-up
  sync.set_trace(recorder);
  alloc_counter::start();
  for (int s = 0; s < steps; ++s) {
    if (recorder) recorder->begin_step(s);
    step(sync);
  }
  return alloc_counter::stop();
}

void expect_none_of_ours(const alloc_counter::Counts& c) {
  EXPECT_EQ(c.total(alloc_counter::kOurs), 0) << alloc_counter::our_stacks();
  EXPECT_EQ(c.total(alloc_counter::kOther), 0);
}

}  // namespace

TEST(GradSyncNoAllocation, WorldOfOne) {
  if (!alloc_counter::enabled()) GTEST_SKIP() << "allocation counting is off under sanitizers";
  LocalCommunicator local;
  expect_none_of_ours(count_steps(local, Compression::none));
  expect_none_of_ours(count_steps(local, Compression::bf16));
}

TEST(GradSyncNoAllocation, TwoRanksWithTheCommunicationThread) {
  if (!alloc_counter::enabled()) GTEST_SKIP() << "allocation counting is off under sanitizers";
  SilentComm two(2, true);
  expect_none_of_ours(count_steps(two, Compression::none));
  expect_none_of_ours(count_steps(two, Compression::bf16));
  // The default bf16 all-reduce keeps its float scratch buffer per thread.
  SilentComm fallback(2, false);
  expect_none_of_ours(count_steps(fallback, Compression::bf16));
}

// PowerSGD's steps (plain ones first, then compressed, with tracing) work
// in the buffers it allocated at construction.
TEST(GradSyncNoAllocation, TwoRanksWithPowerSgd) {
  if (!alloc_counter::enabled()) GTEST_SKIP() << "allocation counting is off under sanitizers";
  PowerSgdOptions o;
  o.start_step = 5;  // count_steps warms up 3 steps: 2 plain steps are counted, then compressed ones
  o.matrices = {{0, 32, 9},          {288, 32, 1},       {320, 64, 288},     {18752, 64, 1},
                {18816, 128, 3136},  {420224, 128, 1},   {420352, 10, 128},  {421632, 10, 1}};
  SilentComm two(2, true);
  ddp::trace::Recorder recorder(0, 20);
  expect_none_of_ours(count_steps(two, Compression::powersgd, 20, &recorder, o));
  EXPECT_EQ(recorder.dropped(), 0u);
}

// With tracing on: the waits and the all-reduces (and bf16 conversions) go
// into the recorder's preallocated buffers, on the communication thread too.
TEST(GradSyncNoAllocation, TwoRanksWithTracing) {
  if (!alloc_counter::enabled()) GTEST_SKIP() << "allocation counting is off under sanitizers";
  const int steps = 20;
  for (Compression compression : {Compression::none, Compression::bf16}) {
    SilentComm two(2, true);
    ddp::trace::Recorder recorder(0, steps);
    expect_none_of_ours(count_steps(two, compression, steps, &recorder));
    const size_t per_bucket = compression == Compression::bf16 ? 3 : 1;  // all-reduce (+ to and from bf16)
    EXPECT_EQ(recorder.events(ddp::trace::Thread::comm).size(), 3 * per_bucket * steps) << compression_name(compression);
    EXPECT_EQ(recorder.events(ddp::trace::Thread::compute).size(), 3u * steps);  // the waits
    EXPECT_EQ(recorder.dropped(), 0u);
  }
}

// Two real ranks (forked) over Gloo: GradSync still allocates nothing of its
// own; what the Gloo all-reduce calls allocate (per call: Gloo's options
// object with its buffer list, its unbound buffers, the algorithm's scratch
// space) is counted apart and printed.
TEST(GradSyncNoAllocation, TwoGlooRanksOurCodeAllocatesNothing) {
  if (!alloc_counter::enabled()) GTEST_SKIP() << "allocation counting is off under sanitizers";
  for (Compression compression : {Compression::none, Compression::bf16}) {
    dist_test::TempDir dir;
    const int steps = 20;
    std::vector<pid_t> pids;
    std::fflush(nullptr);
    for (int r = 0; r < 2; ++r) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        int status = 1;
        try {
          GlooOptions o;
          o.rank = r;
          o.size = 2;
          o.rendezvous_dir = dir.path;
          o.prefix = "alloc-" + std::to_string(::getppid()) + compression_name(compression);
          o.timeout = std::chrono::milliseconds(30000);
          auto gloo = make_gloo_communicator(o);
          Attributed comm(*gloo);
          const auto c = count_steps(comm, compression, steps);
          std::ofstream f(dir.path + "/rank" + std::to_string(r) + ".txt");
          f << c.total(alloc_counter::kOurs) << " " << c.total(alloc_counter::kOther) << " "
            << c.total(alloc_counter::kOneDnn) + c.total(alloc_counter::kOpenMp) << "\n"
            << alloc_counter::our_stacks();
          comm.barrier();
          status = f.good() ? 0 : 3;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "rank %d: %s\n", r, e.what());
        }
        std::fflush(nullptr);
        ::_exit(status);
      }
      pids.push_back(pid);
    }
    for (pid_t pid : pids) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    for (int r = 0; r < 2; ++r) {
      std::ifstream f(dir.path + "/rank" + std::to_string(r) + ".txt");
      long ours = -1, gloo = -1, rest = -1;
      f >> ours >> gloo >> rest;
      std::string stacks((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      EXPECT_EQ(ours, 0) << "rank " << r << ":" << stacks;
      std::printf("[ allocs   ] gloo, 2 ranks, %s, rank %d: ours %ld, Gloo (and libraries it calls) %.1f per step\n",
                  compression_name(compression), r, ours, static_cast<double>(gloo) / steps);
    }
  }
}
