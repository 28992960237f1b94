#include "data/dataset.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "common/error.h"
#include "data/idx.h"
#include "data/prefault.h"

namespace ddp::data {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

bool is_mnist(const std::string& dataset) { return dataset == "mnist"; }

void check_name(const std::string& dataset) {
  if (dataset != "mnist" && dataset != "fashion-mnist")
    throw UserError("unknown dataset '" + dataset + "'", "valid datasets are: mnist, fashion-mnist");
}

// How to get (or repair) the dataset's files into `dir`.
std::string fetch_hint(const std::string& dataset, const std::string& dir) {
  if (is_mnist(dataset)) return "fetch MNIST with: scripts/fetch_data.sh " + dir;
  std::string hint = "install Fashion-MNIST with: apt-get install dataset-fashion-mnist";
  if (dir != default_data_dir(dataset)) hint += " (it installs into " + default_data_dir(dataset) + ")";
  return hint;
}

std::string repair_hint(const std::string& dataset, const std::string& dir) {
  if (is_mnist(dataset)) return "re-fetch it with: scripts/fetch_data.sh " + dir;
  return "reinstall it with: apt-get install --reinstall dataset-fashion-mnist";
}

// <dir>/<base>, else <dir>/<base>.gz.
std::string find_file(const std::string& dir, const std::string& base, const std::string& hint) {
  fs::path plain = fs::path(dir) / base;
  std::error_code ec;
  if (fs::exists(plain, ec)) return plain.string();
  fs::path gz = fs::path(dir) / (base + ".gz");
  if (fs::exists(gz, ec)) return gz.string();
  throw UserError(plain.string() + ": no such file (nor " + base + ".gz)", hint);
}

uint64_t fnv1a(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnvPrime;
  return h;
}

float normalise(int x) { return (static_cast<float>(x) / 255.0f - kMean) / kStd; }

// Exact inverse of normalise() for its 256 outputs.
uint8_t raw_pixel(float v) {
  long x = std::lround((v * kStd + kMean) * 255.0f);
  return static_cast<uint8_t>(std::clamp(x, 0L, 255L));
}

// Converts the raw pixels to floats (appended to dst) and hashes them, in
// one pass. dst grows a chunk at a time within its reserved capacity, so
// each chunk is zeroed and then overwritten while it is still in cache.
uint64_t convert_and_hash(const std::vector<uint8_t>& src, std::vector<float>& dst) {
  std::array<float, 256> lut;
  for (int x = 0; x < 256; ++x) lut[x] = normalise(x);
  constexpr size_t kChunk = 64 * 1024;
  dst.clear();
  dst.reserve(src.size());
  detail::prefault(dst.data(), src.size() * sizeof(float));
  uint64_t h = kFnvOffset;
  for (size_t start = 0; start < src.size(); start += kChunk) {
    const size_t end = std::min(src.size(), start + kChunk);
    dst.resize(end);
    const uint8_t* in = src.data();
    float* out = dst.data();
    for (size_t i = start; i < end; ++i) {
      uint8_t b = in[i];
      out[i] = lut[b];
      h = (h ^ b) * kFnvPrime;
    }
  }
  return h;
}

}  // namespace

std::string default_data_dir(const std::string& dataset) {
  check_name(dataset);
  return is_mnist(dataset) ? "data/mnist" : "/usr/share/datasets/fashion-mnist";
}

Dataset load_dataset(const std::string& dataset, const std::string& dir, Split split) {
  check_name(dataset);
  std::error_code ec;
  fs::file_status st = fs::status(dir, ec);
  if (!fs::exists(st))
    throw UserError(dataset + " data directory " + dir + " does not exist", fetch_hint(dataset, dir));
  if (!fs::is_directory(st))
    throw UserError(dir + ": is not a directory (expected the " + dataset + " data directory)",
                    "pass the directory that holds the IDX files");

  const std::string prefix = split == Split::train ? "train" : "t10k";
  const std::string hint = fetch_hint(dataset, dir);
  std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte", hint);
  std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte", hint);

  IdxImages images;
  IdxLabels labels;
  try {
    images = read_idx_images(images_path, kRows, kCols);
    labels = read_idx_labels(labels_path, kClasses);
  } catch (const UserError& e) {
    throw UserError(e.what(), repair_hint(dataset, dir));  // the dataset's own fix
  }
  if (images.count != labels.count)
    throw UserError(images_path + " holds " + std::to_string(images.count) + " images but " + labels_path +
                        " holds " + std::to_string(labels.count) + " labels: the two files do not belong together",
                    repair_hint(dataset, dir));
  if (images.count == 0)
    throw UserError(images_path + ": holds no images", repair_hint(dataset, dir));

  Dataset ds;
  ds.name = dataset;
  ds.size = images.count;
  uint64_t h = convert_and_hash(images.pixels, ds.images);
  ds.checksum = fnv1a(h, labels.labels.data(), labels.labels.size());
  ds.labels.assign(labels.labels.begin(), labels.labels.end());
  return ds;
}

void truncate(Dataset& ds, int64_t n) {
  DDP_ASSERT(n >= 0, "truncate: n must be >= 0");
  if (n >= ds.size) return;
  ds.size = n;
  ds.images.resize(static_cast<size_t>(n) * kPixels);
  ds.images.shrink_to_fit();
  ds.labels.resize(static_cast<size_t>(n));
  ds.labels.shrink_to_fit();
  // Keep the checksum that of the raw bytes now held, as load_dataset
  // would have computed it for a file of the first n samples.
  uint64_t h = kFnvOffset;
  for (float v : ds.images) h = (h ^ raw_pixel(v)) * kFnvPrime;
  for (int32_t l : ds.labels) h = (h ^ static_cast<uint8_t>(l)) * kFnvPrime;
  ds.checksum = h;
}

}  // namespace ddp::data
