// The IDX file format (LeCun's MNIST format), plain or gzip'd. Every field
// is validated against the file's real size before anything is allocated.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ddp::data {

struct IdxImages {
  int64_t count = 0;
  int rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // [count, rows, cols]
};

struct IdxLabels {
  int64_t count = 0;
  std::vector<uint8_t> labels;  // [count], each checked to be < max_label
};

// Reads a whole file; a name ending in .gz (or starting with the gzip magic)
// is decompressed, refusing more than max_bytes of output.
std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes);

// Throw ddp::UserError("<path>: <problem>", hint) on any problem.
IdxImages read_idx_images(const std::string& path, int want_rows = 28, int want_cols = 28);
IdxLabels read_idx_labels(const std::string& path, int num_classes = 10);

}  // namespace ddp::data
