// An image-classification dataset held in memory, already normalised.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ddp::data {

constexpr int kRows = 28;
constexpr int kCols = 28;
constexpr int kPixels = kRows * kCols;
constexpr int kClasses = 10;
// MNIST normalisation (torchvision's), applied once at load time.
constexpr float kMean = 0.1307f;
constexpr float kStd = 0.3081f;

struct Dataset {
  std::string name;            // "mnist" or "fashion-mnist"
  int64_t size = 0;            // number of samples
  std::vector<float> images;   // [size, 1, 28, 28], (x/255 - kMean) / kStd
  std::vector<int32_t> labels; // [size], 0..9
  uint64_t checksum = 0;       // FNV-1a over the raw bytes of images and labels
  const float* image(int64_t i) const { return images.data() + i * kPixels; }
};

enum class Split { train, test };

// The directory a dataset is read from when --data-dir is not given.
std::string default_data_dir(const std::string& dataset);

// Loads <dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. Every problem
// (missing directory or file, corrupt or truncated file, bad header, label
// out of range, count mismatch) throws ddp::UserError naming the file, the
// problem and the fix. `dataset` is "mnist" or "fashion-mnist".
Dataset load_dataset(const std::string& dataset, const std::string& dir, Split split);

// Keeps the first n samples (n >= size keeps all). The checksum becomes that
// of the kept samples, as if loaded from files holding only them.
void truncate(Dataset& ds, int64_t n);

}  // namespace ddp::data
