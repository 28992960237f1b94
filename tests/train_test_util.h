// Helpers for the tests of src/train that run steps without MNIST: a
// synthetic data set, a private temp directory, and a world of ranks as
// threads of this process, joined over Gloo.
#pragma once
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "dist/communicator.h"
#include "dist/gloo_communicator.h"
#include "test_util.h"
#include "train/trainer.h"
#include "test_util.h"

namespace train_test {

// n random images with random labels (seeded: the same every time).
inline ddp::data::Dataset synthetic(int64_t n) {
  ddp::data::Dataset d;
  d.name = "synthetic";
  d.size = n;
  std::mt19937 gen(3);
  d.pixels.resize(static_cast<size_t>(n) * ddp::data::kPixels);
  for (auto& p : d.pixels) p = static_cast<uint8_t>(gen() & 0xff);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(gen() % 10));
  for (int x = 0; x < 256; ++x)
    d.normalised[x] = (static_cast<float>(x) / 255.f - ddp::data::kMean) / ddp::data::kStd;
  return d;
}

using test_util::TempDir;

// Runs body(comm) on `world` ranks, each a thread with its own Gloo
// communicator; returns each rank's error message ("" if none).
inline std::vector<std::string> run_ranks(int world, const std::string& prefix,
                                          const std::function<void(ddp::dist::Communicator&)>& body) {
  TempDir dir;
  std::vector<std::string> errors(static_cast<size_t>(world));
  std::vector<std::thread> ranks;
  for (int r = 0; r < world; ++r)
    ranks.emplace_back([&, r] {
      try {
        ddp::dist::GlooOptions o;
        o.rank = r;
        o.size = world;
        o.rendezvous_dir = dir.path;
        o.prefix = prefix;
        o.timeout = std::chrono::milliseconds(30000);
        auto comm = ddp::dist::make_gloo_communicator(o);
        body(*comm);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  return errors;
}


// Full MNIST (data/mnist), loaded once per test program.
inline const ddp::train::Datasets& mnist() {
  static const ddp::train::Datasets data = [] {
    ddp::train::TrainConfig cfg;
    cfg.data_dir = std::string(DDP_SOURCE_DIR) + "/data/mnist";
    if (!std::filesystem::exists(cfg.data_dir + "/train-images-idx3-ubyte"))
      ADD_FAILURE() << "MNIST is missing from " << cfg.data_dir << ": run scripts/fetch_data.sh";
    return ddp::train::load_datasets(cfg);
  }();
  return data;
}

// train() in this process, alone (a world of one), on the first cfg.limit
// training samples of MNIST (all of them when limit is 0).
inline ddp::train::RunResult train_alone(const ddp::train::TrainConfig& cfg) {
  ddp::data::Dataset subset = mnist().train;
  if (cfg.limit > 0) ddp::data::truncate(subset, cfg.limit);
  ddp::dist::LocalCommunicator comm;
  return ddp::train::train(cfg, comm, subset, mnist().test);
}

}  // namespace train_test
