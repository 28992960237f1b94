// libFuzzer target: the IDX reader (src/data/idx.h), plain and gzip'd.
//
// The reader takes a path, so each input is written to a file in /dev/shm
// (private to this process). The first byte chooses what is read:
//   bit 0: labels (else images)    bit 1: the file is named *.gz
//   bit 2: small expected shape (images 2x3, 3 classes; else 28x28, 10 classes)
// The rest is the file's content. A ddp::UserError is the expected outcome of
// a bad file; anything else (a crash, a sanitizer report, another exception)
// is a bug, and so is a result that breaks the reader's promises.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "data/idx.h"

namespace {

std::string temp_path(bool gz) {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return std::string(dir) + "/ddp_idx_fuzz_" + std::to_string(getpid()) + (gz ? ".idx.gz" : ".idx");
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "idx_fuzz: broken promise: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const bool labels = mode & 1, gz = mode & 2, small = mode & 4;
  const std::string path = temp_path(gz);
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) std::abort();
    if (size > 1 && std::fwrite(data + 1, 1, size - 1, f) != size - 1) std::abort();
    std::fclose(f);
  }
  try {
    if (labels) {
      const int classes = small ? 3 : 10;
      ddp::data::IdxLabels l = ddp::data::read_idx_labels(path, classes);
      check(l.count >= 0 && static_cast<size_t>(l.count) == l.labels.size(), "label count matches the data");
      for (uint8_t v : l.labels) check(v < classes, "labels are in range");
    } else {
      const int rows = small ? 2 : 28, cols = small ? 3 : 28;
      ddp::data::IdxImages im = ddp::data::read_idx_images(path, rows, cols);
      check(im.rows == rows && im.cols == cols, "image shape is the one asked for");
      check(im.count >= 0 && static_cast<size_t>(im.count) * rows * cols == im.pixels.size(),
            "image count matches the data");
    }
  } catch (const ddp::UserError& e) {
    // Expected for a bad file; it must say which file.
    check(std::string(e.what()).rfind(path + ": ", 0) == 0, "the message starts with the path");
  }
  std::remove(path.c_str());  // (after a crash scripts/fuzz.sh removes it)
  return 0;
}
