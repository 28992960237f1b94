// --precision bf16 end to end: data-parallel training matches serial
// training, compressed gradients work in both precisions, and a CPU without
// native bf16 is told so before any work.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "apps_test_util.h"
#include "nn/precision.h"

using namespace apps_test;
using nlohmann::json;

namespace {

bool native_bf16() { return ddp::nn::cpu_bf16().support == ddp::nn::Bf16Support::native; }

// With dropout off, N ranks at batch B take the steps of one process at
// batch N*B. In fp32 the losses agree to 2e-4 (the all-reduce sums in
// another order). In bf16 the same last-bit difference in an f32 weight can
// round it to the neighbouring bf16 value, a 0.4% change of that weight;
// measured, the step losses still agree to 6e-6 over 20 steps. 1e-3 allows
// more such flips, while a wrong average (a gradient not divided by the
// world size, a rank's batch lost) is off by more than 10%.
void expect_bf16_matches_serial(int world) {
  TempDir tmp;
  const std::string per_rank = std::to_string(128 / world);
  const json serial = run_ok({binary("train_serial"), "-b", "128", "--dropout", "0", "--limit", "1280", "-e", "2",
                              "--precision", "bf16"},
                             tmp, "serial");
  const json parallel = run_ok({binary("train_parallel"), "-w", std::to_string(world), "-b", per_rank, "--dropout",
                                "0", "--limit", "1280", "-e", "2", "--precision", "bf16"},
                               tmp, "parallel");
  EXPECT_EQ(parallel["config"]["precision"], "bf16");
  const auto& a = serial["step_losses"];
  const auto& b = parallel["step_losses"];
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(a[i].get<double>(), b[i].get<double>(), 1e-3 * std::max(1.0, a[i].get<double>())) << "step " << i;
  EXPECT_NEAR(serial["epochs"][1]["test_loss"].get<double>(), parallel["epochs"][1]["test_loss"].get<double>(), 1e-3);
}

}  // namespace

TEST(TrainParallelBf16, TwoRanksAtBatch64MatchSerialAtBatch128) {
  if (!native_bf16()) GTEST_SKIP() << "no native bf16 on this CPU";
  expect_bf16_matches_serial(2);
}

TEST(TrainParallelBf16, FourRanksAtBatch32MatchSerialAtBatch128) {
  if (!native_bf16()) GTEST_SKIP() << "no native bf16 on this CPU";
  expect_bf16_matches_serial(4);
}

// --grad-compression bf16 (the all-reduce's wire format) and --precision
// (the compute's) are independent: both precisions run and learn alike
// (10 steps: ~52% test accuracy in either, from 10% at the start).
TEST(TrainParallelBf16, CompressedGradientsWorkInBothPrecisions) {
  if (!native_bf16()) GTEST_SKIP() << "no native bf16 on this CPU";
  TempDir tmp;
  std::vector<double> accuracy;
  for (const char* precision : {"fp32", "bf16"}) {
    const json r = run_ok({binary("train_parallel"), "-w", "2", "--limit", "1280", "-e", "1", "--grad-compression",
                           "bf16", "--precision", precision},
                          tmp, std::string("compressed_") + precision);
    EXPECT_EQ(r["config"]["precision"], precision);
    EXPECT_EQ(r["config"]["grad_compression"], "bf16");
    accuracy.push_back(r["final_test_accuracy"].get<double>());
    EXPECT_GT(accuracy.back(), 0.3) << precision;
  }
  EXPECT_NEAR(accuracy[0], accuracy[1], 0.05);
}

// ONEDNN_MAX_CPU_ISA makes oneDNN see an older CPU. Without AVX-512, bf16 is
// refused before any work, naming the fix; DDP_FORCE_BF16=1 gets past the
// check, and oneDNN 2.6's missing kernels are then one clear error too.
TEST(Bf16Support, WithoutAvx512Bf16IsRefusedNamingTheFix) {
  TempDir tmp;
  for (const char* program : {"train_serial", "train_parallel"}) {
    Proc p({binary(program), "--precision", "bf16", "--limit", "640", "-e", "1", "--data-dir", mnist_dir()},
           tmp.path + "/refused.log", {{"ONEDNN_MAX_CPU_ISA", "AVX2"}});
    ASSERT_TRUE(p.wait(30));
    EXPECT_EQ(p.exit_code(), 1) << program;
    EXPECT_NE(p.output().find("needs AVX-512"), std::string::npos) << p.output();
    EXPECT_NE(p.output().find("--precision fp32"), std::string::npos) << p.output();
    EXPECT_LT(p.seconds, 5.0) << program << " took " << p.seconds << " s to refuse";
  }
  Proc forced({binary("train_serial"), "--precision", "bf16", "--limit", "640", "-e", "1", "--data-dir",
               mnist_dir()},
              tmp.path + "/forced.log", {{"ONEDNN_MAX_CPU_ISA", "AVX2"}, {"DDP_FORCE_BF16", "1"}});
  ASSERT_TRUE(forced.wait(60));
  if (forced.exit_code() != 0) {  // this oneDNN has no such kernels: one clear error
    EXPECT_EQ(forced.exit_code(), 1);
    EXPECT_NE(forced.output().find("no bf16 kernels"), std::string::npos) << forced.output();
    EXPECT_NE(forced.output().find("--precision fp32"), std::string::npos) << forced.output();
  }
}

// A value of DDP_FORCE_BF16 other than 1 or 0 is a typo, not "unset": one
// error naming the variable and its values, before any work, on any CPU.
TEST(Bf16Support, ADdpForceBf16OtherThan1Or0IsRefusedNamingItsValues) {
  TempDir tmp;
  Proc p({binary("train_serial"), "--precision", "bf16", "--limit", "640", "-e", "1", "--data-dir", mnist_dir()},
         tmp.path + "/typo.log", {{"DDP_FORCE_BF16", "yes"}});
  ASSERT_TRUE(p.wait(30));
  EXPECT_EQ(p.exit_code(), 1) << p.output();
  EXPECT_NE(p.output().find("DDP_FORCE_BF16 is 'yes': it takes 1 (force bf16) or 0"), std::string::npos)
      << p.output();
}

TEST(Bf16Support, EmulatedBf16RunsAndSaysFp32IsFaster) {
  if (ddp::nn::cpu_bf16().support == ddp::nn::Bf16Support::unsupported) GTEST_SKIP() << "no AVX-512";
  TempDir tmp;
  Proc p({binary("train_serial"), "--precision", "bf16", "--limit", "128", "-e", "1", "--no-progress", "--data-dir",
          mnist_dir()},
         tmp.path + "/emulated.log", {{"ONEDNN_MAX_CPU_ISA", "AVX512_CORE"}});
  ASSERT_TRUE(p.wait(120));
  EXPECT_EQ(p.exit_code(), 0) << p.output();
  EXPECT_NE(p.output().find("emulates bf16"), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("--precision fp32"), std::string::npos) << p.output();
}
