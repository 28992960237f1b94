// train_parallel --grad-compression powersgd end to end (2 real processes,
// real MNIST, 5 steps a run): the ranks finish with identical parameters (the
// trainer's checksum check after every epoch fails the run otherwise), the
// steps before --powersgd-start-step are plain DDP's to the bit, the results
// record the settings, bad flags are refused, and resuming after PowerSGD
// began is refused with a fix that works; Ctrl-C during compressed steps
// stops both ranks with a checkpoint. (A killed or silent rank in PowerSGD
// mode: apps_parallel_test.cpp and apps_silent_peer_test.cpp.)
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "apps_test_util.h"
#include "test_util.h"

using namespace apps_test;
using nlohmann::json;

namespace {

// 640 samples at 2 ranks of batch 64: 5 steps an epoch.
std::vector<std::string> job(std::vector<std::string> flags) {
  std::vector<std::string> argv = {binary("train_parallel"), "-w", "2", "--limit", "640", "--no-progress",
                                   "--data-dir", mnist_dir()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

// Runs to the end; the exit code and output.
std::pair<int, std::string> run(const std::vector<std::string>& argv, const TempDir& tmp, const std::string& name) {
  Proc p(argv, tmp.path + "/" + name + ".log");
  EXPECT_TRUE(p.wait(120)) << name << " did not finish";
  return {p.exit_code(), p.output()};
}

}  // namespace

// One PowerSGD run of 5 steps (3 plain), compared with plain DDP; then its
// checkpoint, written after PowerSGD began, lacks the per-rank residuals:
// resuming is refused, naming --powersgd-start-step at the checkpoint's
// step, which then works. (One test: each run evaluates the whole test set.)
TEST(TrainParallelPowerSgd, PlainStepsArePlainDdpAndResumingAfterTheStartIsRefusedWithAFix) {
  TempDir tmp;
  const std::string out = tmp.path + "/psgd.json", plain_out = tmp.path + "/plain.json", ck = tmp.path + "/ck";
  const auto [code, log] = run(job({"-e", "1", "--grad-compression", "powersgd", "--powersgd-start-step", "3",
                                    "--save-results", out, "--checkpoint-dir", ck}),
                               tmp, "psgd");
  ASSERT_EQ(code, 0) << log;
  const auto [plain_code, plain_log] = run(job({"-e", "1", "--save-results", plain_out}), tmp, "plain");
  ASSERT_EQ(plain_code, 0) << plain_log;
  const json r = json::parse(read_file(out)), plain = json::parse(read_file(plain_out));
  EXPECT_EQ(r["config"]["grad_compression"], "powersgd");
  EXPECT_EQ(r["config"]["powersgd_rank"], 2);
  EXPECT_EQ(r["config"]["powersgd_start_step"], 3);
  EXPECT_FALSE(plain["config"].contains("powersgd_rank")) << "written for PowerSGD runs only";
  const auto& a = r["step_losses"];
  const auto& b = plain["step_losses"];
  ASSERT_EQ(a.size(), 5u);
  ASSERT_EQ(b.size(), 5u);
  // Steps 0-2 all-reduce plain floats, so step 3's loss (computed before
  // its own all-reduce) is still plain DDP's; step 4 follows a compressed one.
  for (size_t i = 0; i <= 3; ++i) EXPECT_EQ(a[i].get<double>(), b[i].get<double>()) << "step " << i;
  EXPECT_NE(a[4].get<double>(), b[4].get<double>()) << "step 3 was not compressed";
  EXPECT_NEAR(a[4].get<double>(), b[4].get<double>(), 0.05) << "a compressed step far from plain DDP's";

  const auto [refused, why] = run(job({"-e", "2", "--grad-compression", "powersgd", "--powersgd-start-step", "3",
                                       "--checkpoint-dir", ck, "--resume", "auto"}),
                                  tmp, "refused");
  EXPECT_NE(refused, 0);
  EXPECT_NE(why.find("residuals"), std::string::npos) << why;
  EXPECT_NE(why.find("--powersgd-start-step 5"), std::string::npos) << why;
  const auto [fixed, fixed_log] = run(job({"-e", "2", "--grad-compression", "powersgd", "--powersgd-start-step", "5",
                                           "--checkpoint-dir", ck, "--resume", "auto"}),
                                      tmp, "fixed");
  EXPECT_EQ(fixed, 0) << fixed_log;
}

TEST(TrainParallelPowerSgd, FlagsWithoutPowerSgdOrOutOfRangeAreRefused) {
  TempDir tmp;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--powersgd-rank", "4"}, "needs --grad-compression powersgd"},
      {{"--grad-compression", "bf16", "--powersgd-start-step", "4"}, "needs --grad-compression powersgd"},
      {{"--grad-compression", "powersgd", "--powersgd-rank", "0"}, "powersgd-rank"},
      {{"--grad-compression", "powersgd", "--powersgd-start-step", "-1"}, "powersgd-start-step"},
      {{"--grad-compression", "powersgd2"}, "grad-compression"}};
  for (const auto& [flags, phrase] : cases) {
    Proc p(job(flags), tmp.path + "/bad.log");
    ASSERT_TRUE(p.wait(10));
    EXPECT_NE(p.exit_code(), 0) << flags[0] << " " << flags[1];
    EXPECT_NE(p.output().find(phrase), std::string::npos) << p.output();
  }
}

// Ctrl-C (SIGINT to the launcher) while PowerSGD compresses: the agreed stop
// rides on the per-step flags all-reduce, so both ranks stop at the same
// step, write one checkpoint and exit 130 naming --resume; resuming it in
// PowerSGD mode is then refused with the fix (its residuals are per rank).
TEST(TrainParallelPowerSgd, CtrlCStopsBothRanksWithACheckpoint) {
  TempDir tmp;
  const std::string ck = tmp.path + "/ck";
  std::vector<std::string> argv = {binary("train_parallel"), "-w", "2", "-e", "3", "--limit", "6400",
                                   "--no-progress", "--data-dir", mnist_dir(), "--grad-compression", "powersgd",
                                   "--powersgd-start-step", "0", "--checkpoint-dir", ck};
  stop_during_epoch_2(argv, ck, SIGINT, tmp.path + "/stopped.log");

  argv.insert(argv.end(), {"--resume", "auto"});
  const auto [refused, why] = run(argv, tmp, "resumed");
  EXPECT_NE(refused, 0);
  EXPECT_NE(why.find("--powersgd-start-step"), std::string::npos) << why;
}
