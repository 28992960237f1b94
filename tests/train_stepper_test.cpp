// The mitigations of communication cost (train/stepper.h) against what
// they promise, with ranks as threads over Gloo on synthetic data (dropout
// off): gradient accumulation on N ranks is serial training at K x N x B;
// stale gradients are serial training applying each gradient one step late;
// local SGD's ranks agree right after each averaging step and differ in
// between, and with one rank it is serial training; the stop and
// non-finite flags reach every rank in the same step in every mode.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "common/hash.h"
#include "dist/counting_communicator.h"
#include "dist/grad_sync.h"
#include "nn/cnn.h"
#include "optim/sgd.h"
#include "train/stepper.h"
#include "train/trainer.h"
#include "train_test_util.h"

using namespace ddp;
using train_test::run_ranks;
using train_test::synthetic;

namespace {

constexpr double kLr = 0.05;

// One rank's model, optimizer, synchroniser and Stepper, as the trainer
// builds them.
struct Rank {
  train::GradientLayout layout = train::gradient_layout(64 << 10);
  nn::Cnn net{0.f, layout.count - layout.num_params};
  optim::Sgd sgd{layout.num_params, 0.9f};
  std::vector<float> stale;
  std::unique_ptr<dist::GradSync> sync;
  std::unique_ptr<train::Stepper> stepper;

  Rank(dist::Communicator& comm, const train::TrainConfig& cfg, int64_t steps_per_epoch) {
    net.init(7);
    if (cfg.stale_gradients > 0) stale.resize(layout.count);
    sync = std::make_unique<dist::GradSync>(comm, stale.empty() ? net.grads() : stale.data(), layout.count, 64 << 10,
                                            layout.segments);
    stepper = std::make_unique<train::Stepper>(cfg, model(), comm, stale.empty() ? nullptr : stale.data(),
                                               steps_per_epoch);
  }
  train::StepModel model() { return {net, sgd, *sync}; }
  std::vector<float> params() const { return {net.params(), net.params() + layout.num_params}; }
  uint64_t state_hash() {
    return fnv1a(sgd.velocity().data(), layout.num_params * sizeof(float),
                 fnv1a(net.params(), layout.num_params * sizeof(float)));
  }
};

// Samples [first, first + n) in order.
std::vector<int64_t> range(int64_t first, int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

// Step s of rank r at batch b in a world of w takes the samples a serial
// run at batch w x b takes next (the trainer's sampler deals them so).
std::vector<int64_t> batch_of(int64_t s, int r, int w, int b) { return range((s * w + r) * b, b); }

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// One serial model stepped with the plain library parts (no Stepper).
struct Serial {
  dist::LocalCommunicator comm;
  train::TrainConfig cfg;
  Rank rank{comm, cfg, 1 << 20};
  train::StepModel model() { return rank.model(); }
};

}  // namespace

// 2 ranks at batch 8 accumulating 2 micro-batches: an epoch of 5
// micro-batches is serial steps at batch 32, 32 and, for the short last
// group, 16.
TEST(Accumulate, TwoRanksAccumulatingTwoMatchSerialAtFourTimesTheBatch) {
  const auto data = synthetic(160);
  constexpr int kWorld = 2, kBatch = 8, kSteps = 5;
  train::TrainConfig cfg;
  cfg.accumulate = 2;
  std::vector<std::vector<float>> got(kWorld);
  const auto errors = run_ranks(kWorld, "accumulate", [&](dist::Communicator& comm) {
    Rank r(comm, cfg, kSteps);
    for (int64_t s = 0; s < kSteps; ++s) {
      const auto batch = batch_of(s, comm.rank(), kWorld, kBatch);
      const auto res = r.stepper->step(data, {batch, 1, kLr, false}, s, s);
      ASSERT_FALSE(res.non_finite);
    }
    EXPECT_FALSE(r.stepper->settle().non_finite);
    EXPECT_EQ(r.stepper->optimizer_steps(), 3);
    got[static_cast<size_t>(comm.rank())] = r.params();
  });
  for (const auto& e : errors) ASSERT_EQ(e, "");
  Serial serial;
  for (const auto& [first, n] : std::vector<std::pair<int64_t, int64_t>>{{0, 32}, {32, 32}, {64, 16}}) {
    const auto batch = range(first, n);
    train::train_step(serial.model(), data, {batch, 1, kLr, false});
  }
  EXPECT_EQ(got[0], got[1]);
  EXPECT_LT(max_abs_diff(got[0], serial.rank.params()), 2e-6f);
  // Not vacuous: one serial step at batch 32 less is far off.
  Serial fewer;
  for (int64_t first : {0, 32}) train::train_step(fewer.model(), data, {range(first, 32), 1, kLr, false});
  EXPECT_GT(max_abs_diff(got[0], fewer.rank.params()), 1e-4f);
}

// Serial at batch 32 computing each gradient at w_t and applying it in
// step t+1 (the first step applies nothing, the last gradient is applied
// at the end) is what 2 ranks at batch 16 with --stale-gradients 1 do.
TEST(StaleGradients, TwoRanksMatchSerialApplyingEachGradientOneStepLate) {
  const auto data = synthetic(192);
  constexpr int kWorld = 2, kBatch = 16, kSteps = 6;
  train::TrainConfig cfg;
  cfg.stale_gradients = 1;
  std::vector<std::vector<float>> got(kWorld);
  const auto errors = run_ranks(kWorld, "stale", [&](dist::Communicator& comm) {
    Rank r(comm, cfg, kSteps);
    for (int64_t s = 0; s < kSteps; ++s)
      ASSERT_FALSE(r.stepper->step(data, {batch_of(s, comm.rank(), kWorld, kBatch), 1, kLr, false}, s, s).non_finite);
    EXPECT_FALSE(r.stepper->settle().non_finite);
    EXPECT_EQ(r.stepper->optimizer_steps(), kSteps);
    got[static_cast<size_t>(comm.rank())] = r.params();
  });
  for (const auto& e : errors) ASSERT_EQ(e, "");
  Serial late, fresh;
  std::vector<float> previous;
  const size_t n = late.rank.layout.num_params;
  for (int64_t s = 0; s < kSteps; ++s) {
    const auto batch = range(s * kWorld * kBatch, kWorld * kBatch);
    train::forward_backward(late.model(), data, {batch, 1, kLr, false});
    if (!previous.empty()) late.rank.sgd.step(late.rank.net.params(), previous.data(), static_cast<float>(kLr));
    previous.assign(late.rank.net.grads(), late.rank.net.grads() + n);
    train::train_step(fresh.model(), data, {batch, 1, kLr, false});
  }
  late.rank.sgd.step(late.rank.net.params(), previous.data(), static_cast<float>(kLr));
  EXPECT_EQ(got[0], got[1]);
  EXPECT_LT(max_abs_diff(got[0], late.rank.params()), 2e-6f);
  EXPECT_GT(max_abs_diff(got[0], fresh.rank.params()), 1e-4f);  // staleness shows
}

// Averaging every 3 steps: parameters and momentum are the same bits on
// both ranks right after steps 3 and 6, and differ after the others; the
// epoch's end averages once more.
TEST(LocalSgd, RanksAgreeRightAfterEachAveragingStepAndDifferInBetween) {
  const auto data = synthetic(256);
  constexpr int kWorld = 2, kBatch = 16, kSteps = 7;
  train::TrainConfig cfg;
  cfg.sync_every = 3;
  std::vector<std::vector<uint64_t>> hashes(kWorld);
  std::vector<uint64_t> bytes(kWorld);
  const auto errors = run_ranks(kWorld, "local-sgd", [&](dist::Communicator& gloo) {
    dist::CountingCommunicator comm(gloo);
    Rank r(comm, cfg, kSteps);
    for (int64_t s = 0; s < kSteps; ++s) {
      ASSERT_FALSE(r.stepper->step(data, {batch_of(s, comm.rank(), kWorld, kBatch), 1, kLr, false}, s, s).non_finite);
      hashes[static_cast<size_t>(comm.rank())].push_back(r.state_hash());
    }
    r.stepper->settle();
    hashes[static_cast<size_t>(comm.rank())].push_back(r.state_hash());
    bytes[static_cast<size_t>(comm.rank())] = comm.allreduce_bytes();
  });
  for (const auto& e : errors) ASSERT_EQ(e, "");
  ASSERT_EQ(hashes[0].size(), kSteps + 1u);
  for (size_t s = 0; s < kSteps; ++s) {
    const bool averaged = (s + 1) % 3 == 0;
    EXPECT_EQ(hashes[0][s] == hashes[1][s], averaged) << "after step " << s + 1;
  }
  EXPECT_EQ(hashes[0][kSteps], hashes[1][kSteps]) << "after the epoch's end";
  // A float of flags a step; parameters and momentum at steps 3, 6 and the end.
  const uint64_t n = nn::Cnn::num_params();
  EXPECT_EQ(bytes[0], kSteps * 4 + 3 * 2 * n * 4);
  EXPECT_EQ(bytes[1], bytes[0]);
}

// With warm-up steps the first ones are DDP steps: the ranks agree after each.
TEST(LocalSgd, WarmupStepsAreDdpSteps) {
  const auto data = synthetic(256);
  train::TrainConfig cfg;
  cfg.sync_every = 4;
  cfg.local_sgd_warmup_steps = 2;
  std::vector<std::vector<uint64_t>> hashes(2);
  const auto errors = run_ranks(2, "warmup", [&](dist::Communicator& comm) {
    Rank r(comm, cfg, 8);
    for (int64_t s = 0; s < 6; ++s) {
      r.stepper->step(data, {batch_of(s, comm.rank(), 2, 16), 1, kLr, false}, s, s);
      hashes[static_cast<size_t>(comm.rank())].push_back(r.state_hash());
    }
  });
  for (const auto& e : errors) ASSERT_EQ(e, "");
  const std::vector<bool> same = {true, true, false, false, false, true};  // warm-up, 3 local, average after 4
  for (size_t s = 0; s < same.size(); ++s) EXPECT_EQ(hashes[0][s] == hashes[1][s], same[s]) << "after step " << s + 1;
}

// The trainer with local SGD on one rank trains exactly as serial training.
TEST(LocalSgd, OneRankEqualsSerialBitForBit) {
  const std::string dir = std::string(DDP_SOURCE_DIR) + "/data/mnist";
  train::TrainConfig cfg;
  cfg.epochs = 1;
  cfg.limit = 640;
  cfg.progress = false;
  cfg.data_dir = dir;
  auto data = train::load_datasets(cfg);
  data::truncate(data.test, 1000);  // evaluation is not what differs
  dist::LocalCommunicator comm;
  const auto serial = train::train(cfg, comm, data.train, data.test);
  cfg.sync_every = 4;
  const auto local = train::train(cfg, comm, data.train, data.test);
  ASSERT_EQ(local.step_losses.size(), 10u);
  EXPECT_EQ(local.step_losses, serial.step_losses);
  EXPECT_EQ(local.epochs[0].test_loss, serial.epochs[0].test_loss);
  EXPECT_EQ(local.bytes_per_step, 0.0);  // a world of one sends nothing
}

// In every mode a stop asked for on rank 1 reaches both ranks in the same
// step (with stale gradients one step later, with its gradient), and a
// non-finite loss on rank 1 stops both.
TEST(Flags, StopAndNonFiniteLossReachEveryRankInTheSameStepInEveryMode) {
  const auto data = synthetic(256);
  struct Mode {
    const char* name;
    train::TrainConfig cfg;
    int64_t seen_at;  // the step whose result says stop, for a stop asked in step 0
  };
  train::TrainConfig acc, local, stale;
  acc.accumulate = 4;
  local.sync_every = 4;
  stale.stale_gradients = 1;
  for (const Mode& m : {Mode{"accumulate", acc, 0}, Mode{"local SGD", local, 0}, Mode{"stale", stale, 1}}) {
    for (const bool poison : {false, true}) {
      SCOPED_TRACE(std::string(m.name) + (poison ? ", non-finite loss" : ", stop"));
      std::vector<std::vector<int>> seen(2);  // per step: 1 stop, 2 non-finite
      const auto errors = run_ranks(2, std::string("flags-") + m.name, [&](dist::Communicator& comm) {
        Rank r(comm, m.cfg, 8);
        const bool victim = comm.rank() == 1;
        if (victim && poison) r.net.params()[r.layout.num_params - 10] = std::numeric_limits<float>::quiet_NaN();
        for (int64_t s = 0; s < 2; ++s) {
          const auto res = r.stepper->step(data, {batch_of(s, comm.rank(), 2, 16), 1, kLr, victim && s == 0}, s, s);
          seen[static_cast<size_t>(comm.rank())].push_back(res.non_finite ? 2 : res.stop ? 1 : 0);
          if (res.non_finite) break;
        }
        r.stepper->settle();
      });
      for (const auto& e : errors) ASSERT_EQ(e, "");
      EXPECT_EQ(seen[0], seen[1]);
      ASSERT_GT(seen[0].size(), static_cast<size_t>(m.seen_at));
      EXPECT_EQ(seen[0][static_cast<size_t>(m.seen_at)], poison ? 2 : 1);
    }
  }
}
