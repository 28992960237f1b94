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

struct TempDir {
  std::string path;
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "train-test-XXXXXX").string();
    if (mkdtemp(t.data())) path = t;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

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

}  // namespace train_test
