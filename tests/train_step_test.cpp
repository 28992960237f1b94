// The pieces train() is made of: the gradient layout (the same buckets as
// the GradSync the trainer builds), the typed per-epoch statistics gathered
// across two real ranks (every field arrives, in its place), and the step
// itself (no heap allocation of ours in steady state).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "alloc_counter.h"
#include "common/trace.h"
#include "dist/gloo_communicator.h"
#include "dist/grad_sync.h"
#include "nn/cnn.h"
#include "optim/sgd.h"
#include "train/epoch_stats.h"
#include "train/step.h"
#include "train/stepper.h"
#include "train_test_util.h"

using namespace ddp;

using train_test::synthetic;
using train_test::TempDir;

namespace {

dist::BucketBounds buckets_of(const dist::GradSync& sync) {
  dist::BucketBounds out;
  for (size_t i = 0; i < sync.num_buckets(); ++i) out.push_back(sync.bucket(i));
  return out;
}

}  // namespace

TEST(GradientLayout, AgreesWithTheGradSyncTheTrainerBuilds) {
  nn::Cnn net(0.5f, 1);
  dist::LocalCommunicator local;
  for (size_t kb : {size_t{4}, size_t{16}, size_t{64}, size_t{1024}, size_t{1} << 20}) {
    SCOPED_TRACE(std::to_string(kb) + " KiB");
    const train::GradientLayout g = train::gradient_layout(kb * 1024);
    EXPECT_EQ(g.num_params, nn::Cnn::num_params());
    EXPECT_EQ(g.stop_slot, g.num_params);
    EXPECT_EQ(g.count, g.num_params + 1);
    EXPECT_EQ(g.segments.front(), 0u);
    EXPECT_EQ(g.segments.back(), g.stop_slot);
    dist::GradSync sync(local, net.grads(), g.count, kb * 1024, g.segments);
    EXPECT_EQ(g.buckets, buckets_of(sync));
  }
  // One segment per layer with parameters, where backward reports it from.
  std::vector<size_t> reported;
  nn::Cnn probe(0.5f, 1);
  probe.init(1);
  const auto data = synthetic(8);
  float* x = probe.input(8);
  int32_t* y = probe.labels(8);
  for (int j = 0; j < 8; ++j) {
    data.copy_image(j, x + static_cast<size_t>(j) * data::kPixels);
    y[j] = data.labels[static_cast<size_t>(j)];
  }
  probe.forward(8, true, 1);
  probe.backward([&](size_t offset, size_t) { reported.insert(reported.begin(), offset); });
  reported.push_back(nn::Cnn::num_params());
  EXPECT_EQ(train::gradient_layout(64 << 10).segments, reported);
}

// Two ranks over Gloo (two threads of this process), each with a distinct
// value in every field: every rank gets back both rows, field for field.
// The values are written and compared as raw doubles, not through the
// field lists, so a field the lists forget or repeat shows up here.
TEST(EpochStats, GatherAcrossTwoRanksRoundTripsEveryField) {
  constexpr size_t kDoubles = sizeof(train::EpochStats) / sizeof(double);
  auto stats_of = [](int rank) {
    double v[kDoubles];
    for (size_t k = 0; k < kDoubles; ++k) v[k] = 1000.0 * (rank + 1) + static_cast<double>(k) + 0.25;
    if (rank == 1) v[kDoubles - 2] = std::numeric_limits<double>::quiet_NaN();  // a rank that cannot tell
    train::EpochStats s;
    std::memcpy(&s, v, sizeof s);
    return s;
  };
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  std::vector<std::vector<train::EpochStats>> got(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.emplace_back([&, r] {
      try {
        dist::GlooOptions o;
        o.rank = r;
        o.size = 2;
        o.rendezvous_dir = dir.path;
        o.prefix = "epoch-stats";
        o.timeout = std::chrono::milliseconds(30000);
        auto comm = dist::make_gloo_communicator(o);
        got[r] = train::gather_epoch_stats(*comm, stats_of(r));
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(errors[r], "") << "rank " << r;
    ASSERT_EQ(got[r].size(), 2u) << "rank " << r;
    for (int q = 0; q < 2; ++q) {
      const train::EpochStats want = stats_of(q);
      EXPECT_EQ(std::memcmp(&got[r][q], &want, sizeof want), 0) << "rank " << r << " got rank " << q << "'s row wrong";
    }
  }
  // The summary: the slowest rank's training time, the mean of the rest.
  train::EpochRecord e;
  train::summarise_ranks(got[0], e);
  EXPECT_EQ(e.train_time_s, std::max(got[0][0].train_time_s, got[0][1].train_time_s));
  EXPECT_DOUBLE_EQ(e.phases.forward, (got[0][0].phases.forward + got[0][1].phases.forward) / 2);
  EXPECT_DOUBLE_EQ(e.allreduce_busy_s, (got[0][0].comm_busy_s + got[0][1].comm_busy_s) / 2);
  EXPECT_TRUE(std::isnan(e.compute_preempted_s));  // rank 1 could not tell
}

// The trainer's step, as train() and the benchmark run it: after warm-up it
// allocates nothing in our code (oneDNN's own allocations are counted
// apart, as in tests/nn_alloc_test.cpp), and its parts add up to the step.
TEST(TrainStep, SteadyStateAllocatesNothingOfOurs) {
  if (!alloc_counter::enabled()) GTEST_SKIP() << "allocation counting is off under sanitizers";
  nn::set_compute_threads(1);
  const auto data = synthetic(256);
  const train::GradientLayout layout = train::gradient_layout(64 << 10);
  nn::Cnn net(0.5f, layout.count - layout.num_params);
  net.init(7);
  optim::Sgd sgd(layout.num_params, 0.9f);
  dist::LocalCommunicator local;
  dist::GradSync sync(local, net.grads(), layout.count, 64 << 10, layout.segments);
  const train::StepModel model{net, sgd, sync};
  std::vector<int64_t> batch(64);
  auto step = [&](int64_t s) {
    for (size_t j = 0; j < batch.size(); ++j) batch[j] = (s * 64 + static_cast<int64_t>(j)) % data.size;
    return train::train_step(model, data, {batch, train::dropout_seed(7, s, 0), 0.01, false});
  };
  for (int64_t s = 0; s < 3; ++s) step(s);  // warm-up: primitives, scratchpads, OpenMP pool
  alloc_counter::start();
  train::StepResult last;
  for (int64_t s = 3; s < 13; ++s) last = step(s);
  const auto c = alloc_counter::stop();
  EXPECT_EQ(c.total(alloc_counter::kOurs), 0) << alloc_counter::our_stacks();
  EXPECT_EQ(c.total(alloc_counter::kOther), 0);
  EXPECT_TRUE(std::isfinite(last.loss));
  EXPECT_FALSE(last.stop);
  const auto& t = last.times;
  EXPECT_LE(t.data + t.forward + t.backward + t.allreduce_wait + t.optimizer, t.total * (1 + 1e-9));
  EXPECT_GT(t.forward, 0);
  EXPECT_GT(t.backward, 0);
}

// The same with --trace's recorder armed: every part of the step is
// recorded (into buffers allocated before), on both threads, and still
// nothing of ours allocates.
TEST(TrainStep, WithTracingAllocatesNothingOfOursAndRecordsEveryPart) {
  if (!alloc_counter::enabled()) GTEST_SKIP() << "allocation counting is off under sanitizers";
  nn::set_compute_threads(1);
  const auto data = synthetic(256);
  const train::GradientLayout layout = train::gradient_layout(64 << 10);
  nn::Cnn net(0.5f, layout.count - layout.num_params);
  net.init(7);
  optim::Sgd sgd(layout.num_params, 0.9f);
  dist::SilentCommunicator two(2);
  dist::GradSync sync(two, net.grads(), layout.count, 64 << 10, layout.segments);
  trace::Recorder recorder(3, 13);
  net.set_trace(&recorder);
  sync.set_trace(&recorder);
  const train::StepModel model{net, sgd, sync, &recorder};
  std::vector<int64_t> batch(64);
  auto step = [&](int64_t s) {
    for (size_t j = 0; j < batch.size(); ++j) batch[j] = (s * 64 + static_cast<int64_t>(j)) % data.size;
    recorder.begin_step(s);
    return train::train_step(model, data, {batch, train::dropout_seed(7, s, 0), 0.01, false});
  };
  for (int64_t s = 0; s < 3; ++s) step(s);  // warm-up, before the window
  EXPECT_TRUE(recorder.events(trace::Thread::compute).empty());
  alloc_counter::start();
  for (int64_t s = 3; s < 13; ++s) step(s);
  const auto c = alloc_counter::stop();
  EXPECT_EQ(c.total(alloc_counter::kOurs), 0) << alloc_counter::our_stacks();
  EXPECT_EQ(c.total(alloc_counter::kOther), 0);
  // Per step: the step, the batch, 8 layers forward and 8 backward, and per
  // bucket a wait and an optimizer step; the communication thread: one
  // all-reduce per bucket.
  const size_t buckets = sync.num_buckets();
  EXPECT_EQ(recorder.events(trace::Thread::compute).size(), 10 * (2 + 16 + 2 * buckets));
  EXPECT_EQ(recorder.events(trace::Thread::comm).size(), 10 * buckets);
  EXPECT_EQ(recorder.dropped(), 0u);
  for (const auto& e : recorder.events(trace::Thread::compute)) EXPECT_GE(e.dur_ns, 0);
}

// A rank asked to stop raises the stop flag, and the step says so.
TEST(TrainStep, StopRequestComesBackAsStop) {
  const auto data = synthetic(16);
  const train::GradientLayout layout = train::gradient_layout(64 << 10);
  nn::Cnn net(0.5f, layout.count - layout.num_params);
  net.init(7);
  optim::Sgd sgd(layout.num_params, 0.9f);
  dist::LocalCommunicator local;
  dist::GradSync sync(local, net.grads(), layout.count, 64 << 10, layout.segments);
  const train::StepModel model{net, sgd, sync};
  const std::vector<int64_t> batch = {0, 1, 2, 3};
  EXPECT_FALSE(train::train_step(model, data, {batch, 1, 0.01, false}).stop);
  EXPECT_TRUE(train::train_step(model, data, {batch, 2, 0.01, true}).stop);
  EXPECT_FALSE(train::train_step(model, data, {batch, 3, 0.01, false}).stop);
}

// The mitigations' steps (train/stepper.h) allocate nothing in steady state
// either: their buffers are made once, with the Stepper.
TEST(TrainStep, EveryMitigationsStepAllocatesNothingOfOurs) {
  if (!alloc_counter::enabled()) GTEST_SKIP() << "allocation counting is off under sanitizers";
  nn::set_compute_threads(1);
  const auto data = synthetic(256);
  train::TrainConfig acc, local, stale;
  acc.accumulate = 2;
  local.sync_every = 3;
  stale.stale_gradients = 1;
  for (const train::TrainConfig& cfg : {acc, local, stale}) {
    const train::GradientLayout layout = train::gradient_layout(64 << 10);
    nn::Cnn net(0.5f, layout.count - layout.num_params);
    net.init(7);
    optim::Sgd sgd(layout.num_params, 0.9f);
    std::vector<float> in_flight(cfg.stale_gradients > 0 ? layout.count : 0);
    float* const second = in_flight.empty() ? nullptr : in_flight.data();
    dist::LocalCommunicator local_comm;
    dist::GradSync sync(local_comm, second ? second : net.grads(), layout.count, 64 << 10, layout.segments);
    const train::StepModel model{net, sgd, sync};
    train::Stepper stepper(cfg, model, local_comm, second, 100);
    std::vector<int64_t> batch(32);
    auto step = [&](int64_t s) {
      for (size_t j = 0; j < batch.size(); ++j) batch[j] = (s * 32 + static_cast<int64_t>(j)) % data.size;
      return stepper.step(data, {batch, train::dropout_seed(7, s, 0), 0.01, false}, s, s);
    };
    for (int64_t s = 0; s < 4; ++s) step(s);
    alloc_counter::start();
    for (int64_t s = 4; s < 12; ++s) step(s);
    stepper.settle();
    const auto c = alloc_counter::stop();
    EXPECT_EQ(c.total(alloc_counter::kOurs), 0) << alloc_counter::our_stacks();
    EXPECT_EQ(stepper.optimizer_steps(), cfg.accumulate > 1 ? 6 : 12);
  }
}
