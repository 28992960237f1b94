// One epoch of the full MNIST training set, serial, in bf16: the accuracy
// bar of mixed precision (fp32 reaches ~98% after one epoch). CTest label
// "long" (a minute or so on one core).
#include <gtest/gtest.h>

#include <filesystem>

#include "dist/communicator.h"
#include "train/trainer.h"

using namespace ddp;

TEST(LongBf16Mnist, OneFullEpochSerialBeats97_5Percent) {
  if (nn::cpu_bf16().support == nn::Bf16Support::unsupported) GTEST_SKIP() << "no bf16 kernels on this CPU";
  train::TrainConfig cfg;
  cfg.epochs = 1;
  cfg.progress = false;
  cfg.precision = nn::Precision::bf16;
  cfg.data_dir = std::string(DDP_SOURCE_DIR) + "/data/mnist";
  ASSERT_TRUE(std::filesystem::exists(cfg.data_dir + "/train-images-idx3-ubyte"))
      << "MNIST is missing from " << cfg.data_dir << ": run scripts/fetch_data.sh";
  const auto data = train::load_datasets(cfg);
  dist::LocalCommunicator comm;
  const auto r = train::train(cfg, comm, data.train, data.test);
  EXPECT_EQ(r.train_samples, 60000);
  EXPECT_EQ(r.test_samples, 10000);
  EXPECT_GT(r.final_test_accuracy, 0.975);
}
