#include "data/dataset.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "common/error.h"
#include "common/hash.h"
#include "data/idx.h"

namespace ddp::data {
namespace {

namespace fs = std::filesystem;


bool is_mnist(const std::string& dataset) { return dataset == "mnist"; }

void check_name(const std::string& dataset) {
  if (dataset != "mnist" && dataset != "fashion-mnist")
    throw UserError("unknown dataset '" + dataset + "'", "valid datasets are: mnist, fashion-mnist");
}

// How to get (or repair) the dataset's files into `dir`.
std::string fetch_hint(const std::string& dataset, const std::string& dir) {
  // The script's path is relative to the project's checkout, where the
  // default data/mnist is too: from elsewhere, --data-dir is the fix.
  if (is_mnist(dataset))
    return "point --data-dir at the directory that holds MNIST, or fetch it into " + dir +
           " with scripts/fetch_data.sh " + dir + " (from the project's checkout)";
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


float normalise(int x) { return (static_cast<float>(x) / 255.0f - kMean) / kStd; }

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
  for (int x = 0; x < 256; ++x) ds.normalised[x] = normalise(x);
  ds.pixels = std::move(images.pixels);
  ds.checksum = fnv1a(labels.labels.data(), labels.labels.size(), fnv1a(ds.pixels.data(), ds.pixels.size()));
  ds.labels.assign(labels.labels.begin(), labels.labels.end());
  return ds;
}

void truncate(Dataset& ds, int64_t n) {
  DDP_ASSERT(n >= 0, "truncate: n must be >= 0");
  if (n >= ds.size) return;
  ds.size = n;
  ds.pixels.resize(static_cast<size_t>(n) * kPixels);
  ds.pixels.shrink_to_fit();
  ds.labels.resize(static_cast<size_t>(n));
  ds.labels.shrink_to_fit();
  // Keep the checksum that of the raw bytes now held, as load_dataset
  // would have computed it for a file of the first n samples.
  uint64_t h = fnv1a(ds.pixels.data(), ds.pixels.size());
  for (int32_t l : ds.labels) h = (h ^ static_cast<uint8_t>(l)) * kFnvPrime;
  ds.checksum = h;
}

}  // namespace ddp::data
