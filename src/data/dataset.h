// An image-classification dataset held in memory, already normalised.
#pragma once
#include <array>
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

// The pixels stay bytes in memory (47 MB for MNIST's training set instead of
// 188 MB as floats: each rank holds a copy) and are normalised once, at load,
// into a table of the 256 values a byte can become; a batch is filled by
// table look-ups, bit-identical to normalising every pixel up front.
struct Dataset {
  std::string name;             // "mnist" or "fashion-mnist"
  int64_t size = 0;             // number of samples
  std::vector<uint8_t> pixels;  // [size, 28, 28], raw 0..255
  std::vector<int32_t> labels;  // [size], 0..9
  std::array<float, 256> normalised{};  // byte x -> (x/255 - kMean) / kStd
  uint64_t checksum = 0;        // FNV-1a over the raw bytes of images and labels

  // out: [1, 28, 28] floats, the normalised image i.
  void copy_image(int64_t i, float* out) const {
    const uint8_t* p = pixels.data() + i * kPixels;
    for (int k = 0; k < kPixels; ++k) out[k] = normalised[p[k]];
  }
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
