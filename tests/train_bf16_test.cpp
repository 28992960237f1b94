// bf16 mixed precision through the training loop (a world of one): the same
// run twice is the same bit for bit, the results say which precision ran,
// and a checkpoint of either precision resumes in the other.
#include <gtest/gtest.h>

#include <filesystem>

#include "dist/communicator.h"
#include "train/checkpoint.h"
#include "train/results.h"
#include "train/trainer.h"
#include "test_util.h"
#include "train_test_util.h"

using namespace ddp;
using nn::Precision;

namespace {

using train_test::mnist;
using train_test::train_alone;

bool bf16_runs_here() { return nn::cpu_bf16().support != nn::Bf16Support::unsupported; }

train::TrainConfig small_config(int64_t limit, Precision precision) {
  train::TrainConfig cfg;
  cfg.epochs = 1;
  cfg.limit = limit;
  cfg.progress = false;
  cfg.precision = precision;
  cfg.data_dir = std::string(DDP_SOURCE_DIR) + "/data/mnist";
  return cfg;
}

using test_util::TempDir;

}  // namespace

TEST(TrainLoopBf16, SameSeedGivesTheSameLossCurveBitForBit) {
  if (!bf16_runs_here()) GTEST_SKIP() << "no bf16 kernels on this CPU";
  const auto cfg = small_config(640, Precision::bf16);
  const auto a = train_alone(cfg), b = train_alone(cfg);
  ASSERT_EQ(a.step_losses.size(), 10u);
  EXPECT_EQ(a.step_losses, b.step_losses);
  EXPECT_EQ(a.final_test_accuracy, b.final_test_accuracy);
  // bf16 really ran: another curve than fp32's, and the results say so.
  EXPECT_NE(a.step_losses, train_alone(small_config(640, Precision::fp32)).step_losses);
  const auto j = train::to_json(a, "test");
  EXPECT_EQ(j.at("config").at("precision"), "bf16");
  EXPECT_EQ(j.at("onednn").at("implementations").size(), 18u);
  EXPECT_EQ(j.at("onednn").at("isa"), nn::cpu_bf16().isa);
}

// The checkpoint holds f32 parameters and momentum in either precision, so
// the precision is not part of a run's identity: a run stopped in one
// precision continues in the other. The first step after the resume
// computes the loss of the same parameters on the same batch as the
// uninterrupted run, in the other precision: equal within bf16's rounding
// (measured: 0.01-0.03% apart; 1% allowed), far from a model that lost its
// state (a fresh one's loss is 2.33, the checkpointed one's 0.71).
TEST(TrainLoopBf16, ACheckpointResumesInTheOtherPrecision) {
  if (!bf16_runs_here()) GTEST_SKIP() << "no bf16 kernels on this CPU";
  for (const auto& [from, to] : {std::pair{Precision::bf16, Precision::fp32}, std::pair{Precision::fp32, Precision::bf16}}) {
    SCOPED_TRACE(std::string(nn::to_string(from)) + " -> " + nn::to_string(to));
    TempDir dir;
    auto cfg = small_config(3200, from);
    cfg.epochs = 2;
    cfg.checkpoint_dir = dir.path + "/a";
    const auto full = train_alone(cfg);
    const int64_t steps = full.steps_per_epoch;
    ASSERT_EQ(full.step_losses.size(), static_cast<size_t>(2 * steps));

    auto resumed_cfg = cfg;
    resumed_cfg.precision = to;
    resumed_cfg.resume = train::checkpoint_path(cfg.checkpoint_dir, 1);
    resumed_cfg.checkpoint_dir = dir.path + "/b";
    const auto resumed = train_alone(resumed_cfg);
    EXPECT_EQ(resumed.resumed_from, resumed_cfg.resume);
    ASSERT_EQ(resumed.epochs.size(), 2u);
    ASSERT_EQ(resumed.step_losses.size(), full.step_losses.size());
    EXPECT_EQ(resumed.epochs[0].loss, full.epochs[0].loss);  // epoch 1 comes from the checkpoint
    const double first = full.step_losses[steps], again = resumed.step_losses[steps];
    std::printf("[ resume   ] first step after the resume: loss %.5f, uninterrupted %.5f (first step of the run %.5f)\n",
                again, first, full.step_losses[0]);
    EXPECT_NE(first, again) << "the resumed run did not change precision";
    EXPECT_NEAR(again, first, 0.01 * first);
    EXPECT_NEAR(resumed.epochs[1].loss, full.epochs[1].loss, 0.05 * full.epochs[1].loss);
    EXPECT_GT(resumed.final_test_accuracy, 0.9);
  }
}
