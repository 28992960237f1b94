// The training loop in one process (a world of one): determinism, learning,
// and the learning-rate schedule.
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>

#include "dist/communicator.h"
#include "train/trainer.h"
#include "train_test_util.h"

using namespace ddp;

namespace {

using train_test::mnist;
using train_test::train_alone;

train::TrainConfig small_config(int64_t limit) {
  train::TrainConfig cfg;
  cfg.epochs = 1;
  cfg.limit = limit;
  cfg.progress = false;
  cfg.data_dir = std::string(DDP_SOURCE_DIR) + "/data/mnist";
  return cfg;
}

}  // namespace

TEST(TrainLoop, SameSeedGivesTheSameLossCurveBitForBit) {
  const auto cfg = small_config(640);
  const auto a = train_alone(cfg), b = train_alone(cfg);
  ASSERT_EQ(a.step_losses.size(), 10u);
  EXPECT_EQ(a.step_losses, b.step_losses);
  EXPECT_EQ(a.final_test_accuracy, b.final_test_accuracy);
}

TEST(TrainLoop, AnotherSeedGivesAnotherCurve) {
  auto cfg = small_config(640);
  const auto a = train_alone(cfg);
  cfg.seed = 43;
  const auto b = train_alone(cfg);
  EXPECT_NE(a.step_losses, b.step_losses);
}

// (6,400 samples land too close to the bar for a test, depending on the
// seed; docs/performance.md, "Accuracy of short runs", has the figures.)
TEST(TrainLoop, OneEpochOn12800SamplesBeats90Percent) {
  const auto r = train_alone(small_config(12800));
  EXPECT_GT(r.final_test_accuracy, 0.90);
  ASSERT_EQ(r.epochs.size(), 1u);
  EXPECT_EQ(r.steps_per_epoch, 200);
  EXPECT_EQ(r.test_samples, 10000);
  const auto& l = r.step_losses;
  const double first = std::accumulate(l.begin(), l.begin() + 20, 0.0) / 20;
  const double last = std::accumulate(l.end() - 20, l.end(), 0.0) / 20;
  EXPECT_LT(last, 0.5 * first) << "the loss did not fall";
}

TEST(TrainLoop, ResultsAddUp) {
  auto cfg = small_config(1000);
  cfg.epochs = 2;
  const auto r = train_alone(cfg);
  ASSERT_EQ(r.epochs.size(), 2u);
  ASSERT_EQ(r.step_losses.size(), 2u * 16);  // ceil(1000 / 64) steps, the last of 40
  for (const auto& e : r.epochs) {
    const auto& p = e.phases;
    EXPECT_NEAR(p.data + p.forward + p.backward + p.allreduce_wait + p.optimizer + p.other, e.train_time_s, 1e-6);
    EXPECT_NEAR(e.samples_per_s, 1000 / e.train_time_s, 1e-6 * e.samples_per_s);
  }
  EXPECT_GE(r.total_time_s, r.train_time_s);
  EXPECT_EQ(r.final_test_accuracy, r.epochs.back().test_accuracy);
}

TEST(LearningRate, LinearScalingRampsOverTheWarmup) {
  train::TrainConfig cfg;
  cfg.learning_rate = 0.01;
  EXPECT_DOUBLE_EQ(train::learning_rate_at(cfg, 4, 0, 100), 0.01);  // scaling "none"
  cfg.lr_scaling = train::LrScaling::linear;
  EXPECT_DOUBLE_EQ(train::learning_rate_at(cfg, 4, 0, 100), 0.04);  // no warm-up
  cfg.warmup_epochs = 2;
  EXPECT_DOUBLE_EQ(train::learning_rate_at(cfg, 4, 0, 100), 0.01);
  EXPECT_DOUBLE_EQ(train::learning_rate_at(cfg, 4, 100, 100), 0.025);
  EXPECT_DOUBLE_EQ(train::learning_rate_at(cfg, 4, 200, 100), 0.04);
  EXPECT_DOUBLE_EQ(train::learning_rate_at(cfg, 1, 50, 100), 0.01);  // a world of one is never scaled
}
