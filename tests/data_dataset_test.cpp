// load_dataset on small synthetic directories (good and bad), and on the
// real MNIST and Fashion-MNIST when they are present.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "data/dataset.h"
#include "data_test_util.h"

namespace ddp::data {
namespace {

using testing::expect_user_error;
using testing::TempDir;

uint64_t fnv1a(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t x : a) h = (h ^ x) * 0x100000001b3ull;
  for (uint8_t x : b) h = (h ^ x) * 0x100000001b3ull;
  return h;
}

std::vector<uint8_t> payload(const std::vector<uint8_t>& file, size_t header) {
  return {file.begin() + static_cast<std::ptrdiff_t>(header), file.end()};
}

// Writes <dir>/<prefix>-{images-idx3,labels-idx1}-ubyte[.gz] with n samples.
void write_split(const TempDir& dir, const std::string& prefix, uint32_t n, bool gz_images = false,
                 bool gz_labels = false) {
  auto im = testing::image_file(n);
  auto lb = testing::label_file(n);
  testing::write_bytes(dir.file(prefix + "-images-idx3-ubyte" + (gz_images ? ".gz" : "")),
                       gz_images ? testing::gzip(im) : im);
  testing::write_bytes(dir.file(prefix + "-labels-idx1-ubyte" + (gz_labels ? ".gz" : "")),
                       gz_labels ? testing::gzip(lb) : lb);
}

TEST(DatasetNames, DefaultDirs) {
  EXPECT_EQ(default_data_dir("mnist"), "data/mnist");
  EXPECT_EQ(default_data_dir("fashion-mnist"), "/usr/share/datasets/fashion-mnist");
}

TEST(DatasetNames, UnknownDatasetListsTheValidNames) {
  for (auto call : {+[] { default_data_dir("cifar10"); }, +[] { load_dataset("cifar10", ".", Split::train); }}) {
    try {
      call();
      ADD_FAILURE() << "no error";
    } catch (const UserError& e) {
      std::string all = std::string(e.what()) + " " + e.hint();
      EXPECT_NE(all.find("cifar10"), std::string::npos) << all;
      EXPECT_NE(all.find("mnist, fashion-mnist"), std::string::npos) << all;
    }
  }
}

TEST(DatasetSynthetic, LoadsNormalisesAndChecksums) {
  TempDir dir;
  write_split(dir, "train", 12);
  write_split(dir, "t10k", 5, /*gz_images=*/true, /*gz_labels=*/true);

  Dataset tr = load_dataset("mnist", dir.str(), Split::train);
  EXPECT_EQ(tr.name, "mnist");
  EXPECT_EQ(tr.size, 12);
  ASSERT_EQ(tr.pixels.size(), 12u * kPixels);
  ASSERT_EQ(tr.labels.size(), 12u);
  auto im = payload(testing::image_file(12), 16);
  auto lb = payload(testing::label_file(12), 8);
  EXPECT_EQ(tr.pixels, im);
  std::vector<float> img(kPixels);
  for (int64_t s = 0; s < tr.size; ++s) {
    tr.copy_image(s, img.data());
    for (int k = 0; k < kPixels; ++k)
      ASSERT_EQ(img[k], (static_cast<float>(im[s * kPixels + k]) / 255.0f - kMean) / kStd) << s << " " << k;
  }
  for (size_t i = 0; i < lb.size(); ++i) ASSERT_EQ(tr.labels[i], lb[i]);
  EXPECT_EQ(tr.checksum, fnv1a(im, lb));

  Dataset te = load_dataset("mnist", dir.str(), Split::test);
  EXPECT_EQ(te.size, 5);
  EXPECT_EQ(te.checksum, fnv1a(payload(testing::image_file(5), 16), payload(testing::label_file(5), 8)));
}

TEST(DatasetSynthetic, EveryPixelValueNormalisesExactly) {
  // 256 distinct values all appear (i*131+7 mod 256 cycles through all).
  TempDir dir;
  write_split(dir, "train", 1);
  Dataset ds = load_dataset("fashion-mnist", dir.str(), Split::train);
  EXPECT_EQ(ds.name, "fashion-mnist");
  std::vector<float> img(kPixels);
  ds.copy_image(0, img.data());
  EXPECT_FLOAT_EQ(*std::min_element(img.begin(), img.end()), -kMean / kStd);
  EXPECT_FLOAT_EQ(*std::max_element(img.begin(), img.end()), (1.0f - kMean) / kStd);
  for (int x = 0; x < 256; ++x) EXPECT_EQ(ds.normalised[x], (static_cast<float>(x) / 255.0f - kMean) / kStd);
}

TEST(DatasetSynthetic, PlainFileIsPreferredOverGz) {
  TempDir dir;
  write_split(dir, "train", 4);
  // A .gz beside the plain file with different content is ignored.
  testing::write_bytes(dir.file("train-images-idx3-ubyte.gz"), testing::gzip(testing::image_file(9)));
  EXPECT_EQ(load_dataset("mnist", dir.str(), Split::train).size, 4);
}

TEST(DatasetSynthetic, TruncateKeepsAPrefixAndItsChecksum) {
  TempDir small, big;
  write_split(big, "train", 30);
  Dataset ds = load_dataset("mnist", big.str(), Split::train);
  const uint64_t full = ds.checksum;
  truncate(ds, 100);  // more than held: no change
  EXPECT_EQ(ds.size, 30);
  EXPECT_EQ(ds.checksum, full);

  // Truncating to n gives what loading a file of those n samples gives.
  auto im = testing::image_file(30);
  auto lb = testing::label_file(30);
  im.resize(16 + 11 * 784);
  lb.resize(8 + 11);
  im[7] = 11;  // header counts
  lb[7] = 11;
  testing::write_bytes(small.file("train-images-idx3-ubyte"), im);
  testing::write_bytes(small.file("train-labels-idx1-ubyte"), lb);
  Dataset expect = load_dataset("mnist", small.str(), Split::train);

  truncate(ds, 11);
  EXPECT_EQ(ds.size, 11);
  EXPECT_EQ(ds.pixels, expect.pixels);
  EXPECT_EQ(ds.labels, expect.labels);
  EXPECT_EQ(ds.checksum, expect.checksum);
  EXPECT_NE(ds.checksum, full);
}

TEST(DatasetBad, MissingDirectoryNamesTheFetchCommand) {
  TempDir dir;
  std::string missing = dir.file("no-such-dir");
  try {
    load_dataset("mnist", missing, Split::train);
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("scripts/fetch_data.sh"), std::string::npos) << e.hint();
  }
  try {
    load_dataset("fashion-mnist", missing, Split::test);
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("apt-get install dataset-fashion-mnist"), std::string::npos) << e.hint();
  }
}

TEST(DatasetBad, NotADirectory) {
  TempDir dir;
  testing::write_bytes(dir.file("f"), {1, 2, 3});
  expect_user_error([&] { load_dataset("mnist", dir.file("f"), Split::train); }, dir.file("f"), "not a directory");
}

TEST(DatasetBad, MissingFileNamesIt) {
  TempDir dir;
  write_split(dir, "train", 3);
  std::filesystem::remove(dir.file("train-labels-idx1-ubyte"));
  expect_user_error([&] { load_dataset("mnist", dir.str(), Split::train); }, dir.file("train-labels-idx1-ubyte"),
                    "no such file");
  // The test split is missing altogether.
  expect_user_error([&] { load_dataset("mnist", dir.str(), Split::test); }, dir.file("t10k-images-idx3-ubyte"),
                    "no such file");
}

TEST(DatasetBad, CountMismatchNamesBothFiles) {
  TempDir dir;
  testing::write_bytes(dir.file("train-images-idx3-ubyte"), testing::image_file(6));
  testing::write_bytes(dir.file("train-labels-idx1-ubyte.gz"), testing::gzip(testing::label_file(5)));
  try {
    load_dataset("mnist", dir.str(), Split::train);
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(dir.file("train-images-idx3-ubyte")), std::string::npos) << what;
    EXPECT_NE(what.find(dir.file("train-labels-idx1-ubyte.gz")), std::string::npos) << what;
    EXPECT_NE(what.find("6 images"), std::string::npos) << what;
    EXPECT_NE(what.find("5 labels"), std::string::npos) << what;
  }
}

TEST(DatasetBad, CorruptFileGetsTheDatasetsOwnHint) {
  TempDir dir;
  write_split(dir, "train", 3);
  auto lb = testing::label_file(3);
  lb[9] = 200;
  testing::write_bytes(dir.file("train-labels-idx1-ubyte"), lb);
  for (std::string name : {"mnist", "fashion-mnist"}) {
    try {
      load_dataset(name, dir.str(), Split::train);
      ADD_FAILURE() << "no error";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("label 200 at index 1"), std::string::npos) << e.what();
      EXPECT_NE(e.hint().find(name == "mnist" ? "scripts/fetch_data.sh" : "dataset-fashion-mnist"),
                std::string::npos)
          << e.hint();
    }
  }
}

TEST(DatasetBad, NoSamples) {
  TempDir dir;
  write_split(dir, "train", 0);
  expect_user_error([&] { load_dataset("mnist", dir.str(), Split::train); }, dir.file("train-images-idx3-ubyte"),
                    "no images");
}

// ---- the real data, when present ------------------------------------------

void check_real(const Dataset& ds, int64_t want) {
  ASSERT_EQ(ds.size, want);
  ASSERT_EQ(ds.pixels.size(), static_cast<size_t>(want) * kPixels);
  ASSERT_EQ(ds.labels.size(), static_cast<size_t>(want));
  std::vector<int64_t> per_class(kClasses, 0);
  for (int32_t l : ds.labels) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, kClasses);
    ++per_class[l];
  }
  for (int c = 0; c < kClasses; ++c) EXPECT_GT(per_class[c], want / 20) << "class " << c;
}

void pixel_stats(const Dataset& ds, double& mean, double& std) {
  double s = 0, s2 = 0;
  for (uint8_t b : ds.pixels) {
    const double v = ds.normalised[b];
    s += v;
    s2 += v * v;
  }
  double n = static_cast<double>(ds.pixels.size());
  mean = s / n;
  std = std::sqrt(s2 / n - mean * mean);
}

TEST(DatasetReal, Mnist) {
  std::string dir = std::string(DDP_SOURCE_DIR) + "/data/mnist";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << dir << " absent (scripts/fetch_data.sh fetches it)";
  auto t0 = std::chrono::steady_clock::now();
  Dataset tr = load_dataset("mnist", dir, Split::train);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RecordProperty("train_load_seconds", std::to_string(secs));
  std::printf("loaded 60k MNIST training images in %.3f s\n", secs);
  check_real(tr, 60000);
  double mean, std;
  pixel_stats(tr, mean, std);
  EXPECT_LT(std::abs(mean), 0.01) << "normalised mean";
  EXPECT_NEAR(std, 1.0, 0.01) << "normalised std";
  EXPECT_EQ(tr.labels[0], 5);  // the first MNIST training digit is a 5
  // Pinned so that every build agrees on what it means (ranks compare it).
  EXPECT_EQ(tr.checksum, 0x3ce3f21f37b3cd22ull) << std::hex << tr.checksum;

  Dataset te = load_dataset("mnist", dir, Split::test);
  check_real(te, 10000);
  EXPECT_EQ(te.labels[0], 7);  // the first test digit is a 7
  EXPECT_NE(te.checksum, tr.checksum);
}

TEST(DatasetReal, FashionMnist) {
  std::string dir = default_data_dir("fashion-mnist");
  if (!std::filesystem::is_directory(dir))
    GTEST_SKIP() << dir << " absent (apt-get install dataset-fashion-mnist installs it)";
  Dataset tr = load_dataset("fashion-mnist", dir, Split::train);
  check_real(tr, 60000);
  for (int c = 0; c < kClasses; ++c)
    EXPECT_EQ(std::count(tr.labels.begin(), tr.labels.end(), c), 6000) << "class " << c;
  Dataset te = load_dataset("fashion-mnist", dir, Split::test);
  check_real(te, 10000);
  EXPECT_EQ(tr.name, "fashion-mnist");
  // Fashion-MNIST is brighter than MNIST: under MNIST's normalisation its
  // mean is well above zero.
  double mean, std;
  pixel_stats(tr, mean, std);
  EXPECT_GT(mean, 0.3);
}

}  // namespace
}  // namespace ddp::data
