// A resumed run records the same loss history as the uninterrupted one, bit
// for bit, at a world size where a mean over ranks is not exact in float
// (issue #20, fault 4: 3 ranks; the old code multiplied each restored loss
// by the world size in single precision and divided again).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "apps_test_util.h"
#include "train/checkpoint.h"

using namespace apps_test;
using nlohmann::json;

namespace {

std::vector<std::string> job(const TempDir& tmp, const std::string& ckdir, const std::string& results, int epochs) {
  return {binary("train_parallel"), "-w", "3", "-b", "16", "--limit", "6001", "-e", std::to_string(epochs),
          "--no-progress", "--data-dir", mnist_dir(), "--checkpoint-dir", tmp.path + "/" + ckdir,
          "--save-results", tmp.path + "/" + results};
}

TEST(ResumeExact, ThreeRanksStoppedMidEpochAndResumedTwiceRecordTheSameLossesBitForBit) {
  TempDir tmp;
  Proc full(job(tmp, "a", "full.json", 3), tmp.path + "/full.log");
  ASSERT_TRUE(full.wait(300));
  ASSERT_EQ(full.exit_code(), 0) << full.output();

  // One epoch; then on to 3, stopped during epoch 2; then resumed to the end.
  Proc one(job(tmp, "b", "one.json", 1), tmp.path + "/one.log");
  ASSERT_TRUE(one.wait(300));
  ASSERT_EQ(one.exit_code(), 0) << one.output();
  auto more = job(tmp, "b", "more.json", 3);
  more.insert(more.end(), {"--resume", "auto"});
  Proc stopped(more, tmp.path + "/stopped.log");
  // Epoch 2 starts right after the resume message; let it run some 40 steps.
  for (int i = 0; i < 600 && stopped.output().find("resuming from") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  kill(stopped.pid, SIGTERM);
  ASSERT_TRUE(stopped.wait(60));
  ASSERT_EQ(stopped.exit_code(), 128 + SIGTERM) << stopped.output();
  const std::string mid = ddp::train::newest_checkpoint(tmp.path + "/b");
  ASSERT_NE(mid.find("_step"), std::string::npos) << "expected a mid-epoch checkpoint, got " << mid;

  Proc last(more, tmp.path + "/last.log");
  ASSERT_TRUE(last.wait(300));
  ASSERT_EQ(last.exit_code(), 0) << last.output();

  const json a = json::parse(read_file(tmp.path + "/full.json"));
  const json b = json::parse(read_file(tmp.path + "/more.json"));
  const auto x = a.at("step_losses").get<std::vector<float>>(), y = b.at("step_losses").get<std::vector<float>>();
  ASSERT_EQ(x.size(), y.size());
  int differ = 0;
  for (size_t i = 0; i < x.size(); ++i) differ += std::memcmp(&x[i], &y[i], sizeof(float)) != 0;
  EXPECT_EQ(differ, 0) << differ << " of " << x.size() << " per-step losses differ";
  for (size_t e = 0; e < 3; ++e)
    EXPECT_EQ(a["epochs"][e]["loss"].get<double>(), b["epochs"][e]["loss"].get<double>()) << "epoch " << e + 1;
}

}  // namespace
