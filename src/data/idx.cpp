// IDX reader: plain or gzip'd, every field checked against the real size of
// the data before anything is trusted or allocated from it.
#include "data/idx.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "common/error.h"
#include "data/prefault.h"

namespace ddp::data {
namespace {

// The generic hint; load_dataset() replaces it with the dataset's own.
constexpr const char* kRefetchHint =
    "re-fetch it (MNIST: scripts/fetch_data.sh; Fashion-MNIST: "
    "apt-get install --reinstall dataset-fashion-mnist)";

constexpr uint32_t kImageMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelMagic = 0x00000801;  // unsigned byte, 1 dimension
constexpr size_t kImageHeader = 16;
constexpr size_t kLabelHeader = 8;
constexpr size_t kMiB = size_t{1} << 20;
// 60,000 MNIST images are 47,040,016 bytes; 64 MiB leaves room and no more.
constexpr size_t kMaxImageFileBytes = 64 * kMiB;
constexpr size_t kMaxLabelFileBytes = 1 * kMiB;

[[noreturn]] void fail(const std::string& path, const std::string& problem,
                       const std::string& hint = kRefetchHint) {
  throw UserError(path + ": " + problem, hint);
}

std::string describe_bytes(uint64_t n) {
  if (n >= kMiB && n % kMiB == 0) return std::to_string(n / kMiB) + " MiB";
  return std::to_string(n) + " bytes";
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

File open_regular_file(const std::string& path, uint64_t& size) {
  std::FILE* raw = std::fopen(path.c_str(), "rb");
  if (!raw) {
    int err = errno;
    if (err == ENOENT) fail(path, "no such file", kRefetchHint);
    if (err == EACCES) fail(path, "permission denied", "make it readable (chmod a+r)");
    fail(path, std::string("cannot open: ") + std::strerror(err), "check the path");
  }
  File f(raw);
  struct stat st {};
  if (fstat(fileno(raw), &st) != 0) fail(path, std::string("cannot stat: ") + std::strerror(errno), "check the path");
  if (S_ISDIR(st.st_mode)) fail(path, "is a directory, not a file", "point it at the IDX file itself");
  if (!S_ISREG(st.st_mode)) fail(path, "is not a regular file", "point it at the IDX file itself");
  size = static_cast<uint64_t>(st.st_size);
  return f;
}

// Inflates a gzip file (one or more members) into memory, refusing more than
// max_bytes of output. Memory grows with the data actually produced, never
// from a number the file claims.
std::vector<uint8_t> inflate_file(const std::string& path, std::FILE* f, uint64_t file_size,
                                  size_t max_bytes) {
  // The gzip trailer's ISIZE (size mod 2^32) is only a hint for the first
  // allocation, capped by max_bytes and by what the compressed bytes can
  // possibly produce (deflate expands at most ~1032x), so a forged trailer
  // cannot make a tiny file allocate much; nothing else relies on it.
  size_t hint = 64 * 1024;
  const uint64_t producible = file_size * 1032;
  if (file_size >= 18) {
    uint8_t tail[4];
    if (std::fseek(f, -4, SEEK_END) == 0 && std::fread(tail, 1, 4, f) == 4) {
      uint32_t isize = uint32_t{tail[0]} | (uint32_t{tail[1]} << 8) | (uint32_t{tail[2]} << 16) |
                       (uint32_t{tail[3]} << 24);
      hint = std::max<size_t>(hint, std::min<uint64_t>(isize, producible));
    }
    std::rewind(f);
  }
  std::vector<uint8_t> out(std::min(hint, max_bytes + 1));

  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) fail(path, "zlib could not start", "out of memory?");
  struct End {
    z_stream* z;
    ~End() { inflateEnd(z); }
  } end{&zs};

  std::vector<uint8_t> in(256 * 1024);
  bool eof = false;
  auto refill = [&] {
    if (zs.avail_in > 0 || eof) return;
    size_t n = std::fread(in.data(), 1, in.size(), f);
    if (n < in.size()) {
      if (std::ferror(f)) fail(path, std::string("read error: ") + std::strerror(errno), "check the disk");
      eof = true;
    }
    zs.next_in = in.data();
    zs.avail_in = static_cast<uInt>(n);
  };
  auto corrupt = [&](const std::string& what) { fail(path, "corrupt gzip data (" + what + ")"); };

  size_t produced = 0;
  for (;;) {
    refill();
    if (produced == out.size()) {
      if (out.size() > max_bytes) break;  // reported below
      out.resize(std::min(out.size() * 2, max_bytes + 1));
    }
    size_t room = std::min<size_t>(out.size() - produced, 1u << 30);
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(room);
    int ret = inflate(&zs, Z_NO_FLUSH);
    produced += room - zs.avail_out;
    if (produced > max_bytes) break;
    if (ret == Z_STREAM_END) {
      refill();
      if (zs.avail_in == 0) break;  // clean end of the last member
      // Another gzip member may follow (as `cat a.gz b.gz` makes); anything
      // else after the end of the data means the file is not what it seems.
      if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
        inflateReset(&zs);
        continue;
      }
      corrupt("unexpected bytes after the end of the compressed data");
    }
    if (ret == Z_OK || ret == Z_BUF_ERROR) {
      if (zs.avail_out == 0) continue;  // needs more room
      if (zs.avail_in == 0 && eof) fail(path, "gzip data ends early: the file is truncated");
      continue;
    }
    if (ret == Z_MEM_ERROR) fail(path, "out of memory while decompressing", "free some memory");
    corrupt(std::string("zlib: ") + (zs.msg ? zs.msg : "error " + std::to_string(ret)));
  }
  if (produced > max_bytes)
    fail(path, "decompresses to more than " + describe_bytes(max_bytes) +
                   ", far more than an IDX file of this kind can hold: it is corrupt or not an IDX file");
  out.resize(produced);
  out.shrink_to_fit();
  return out;
}

std::string what_magic_is(uint32_t magic) {
  if (magic == kImageMagic) return "an IDX image file";
  if (magic == kLabelMagic) return "an IDX label file";
  if ((magic >> 16) == 0 && ((magic >> 8) & 0xff) >= 0x08 && ((magic >> 8) & 0xff) <= 0x0e)
    return "an IDX file of another type or shape";
  return "not an IDX file";
}

void check_magic(const std::string& path, const std::vector<uint8_t>& bytes, uint32_t want, const char* kind) {
  if (bytes.size() < 4)
    fail(path, "the file is truncated: " + std::to_string(bytes.size()) + " bytes, too short for an IDX header");
  uint32_t magic = be32(&bytes[0]);
  if (magic != want)
    fail(path, "bad magic number " + hex32(magic) + " (" + what_magic_is(magic) + "); an IDX " + kind +
                   " file starts with " + hex32(want));
}

}  // namespace

std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes) {
  uint64_t size = 0;
  File f = open_regular_file(path, size);
  if (size == 0) return {};
  uint8_t magic[2] = {0, 0};
  size_t got = std::fread(magic, 1, 2, f.get());
  bool gzip = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  if (!gzip && ends_with(path, ".gz"))
    fail(path, "the name ends in .gz but the file is not gzip data (it does not start with 1f 8b)");
  if (gzip) return inflate_file(path, f.get(), size, max_bytes);

  if (size > max_bytes)
    fail(path, "is " + std::to_string(size) + " bytes, more than the " + describe_bytes(max_bytes) +
                   " an IDX file of this kind can hold: it is corrupt or not an IDX file");
  std::rewind(f.get());
  std::vector<uint8_t> bytes;
  bytes.reserve(static_cast<size_t>(size));
  detail::prefault(bytes.data(), static_cast<size_t>(size));
  bytes.resize(static_cast<size_t>(size));
  size_t n = std::fread(bytes.data(), 1, bytes.size(), f.get());
  if (n != bytes.size()) {
    if (std::ferror(f.get())) fail(path, std::string("read error: ") + std::strerror(errno), "check the disk");
    fail(path, "the file shrank while being read", "make sure nothing else is writing it");
  }
  return bytes;
}

IdxImages read_idx_images(const std::string& path, int want_rows, int want_cols) {
  DDP_ASSERT(want_rows > 0 && want_cols > 0, "image dimensions must be positive");
  std::vector<uint8_t> bytes = read_file_bytes(path, kMaxImageFileBytes);
  if (bytes.empty()) fail(path, "the file is empty (0 bytes)");
  check_magic(path, bytes, kImageMagic, "image");
  if (bytes.size() < kImageHeader)
    fail(path, "the file is truncated: " + std::to_string(bytes.size()) +
                   " bytes, too short for the 16-byte IDX image header");
  uint64_t count = be32(&bytes[4]);
  uint64_t rows = be32(&bytes[8]);
  uint64_t cols = be32(&bytes[12]);
  if (rows != static_cast<uint64_t>(want_rows) || cols != static_cast<uint64_t>(want_cols))
    fail(path, "images are " + std::to_string(rows) + "x" + std::to_string(cols) + ", expected " +
                   std::to_string(want_rows) + "x" + std::to_string(want_cols));
  // count < 2^32 and rows*cols is small, so this cannot overflow.
  uint64_t expected = kImageHeader + count * rows * cols;
  if (bytes.size() != expected) {
    std::string claim = "the header says " + std::to_string(count) + " images of " + std::to_string(rows) +
                        "x" + std::to_string(cols) + " (" + std::to_string(expected) +
                        " bytes with the header) but the data is " + std::to_string(bytes.size()) + " bytes";
    fail(path, claim + (bytes.size() < expected ? ": the file is truncated" : ": unexpected trailing bytes"));
  }
  IdxImages out;
  out.count = static_cast<int64_t>(count);
  out.rows = want_rows;
  out.cols = want_cols;
  bytes.erase(bytes.begin(), bytes.begin() + kImageHeader);
  out.pixels = std::move(bytes);
  return out;
}

IdxLabels read_idx_labels(const std::string& path, int num_classes) {
  DDP_ASSERT(num_classes > 0 && num_classes <= 256, "num_classes must be in 1..256");
  std::vector<uint8_t> bytes = read_file_bytes(path, kMaxLabelFileBytes);
  if (bytes.empty()) fail(path, "the file is empty (0 bytes)");
  check_magic(path, bytes, kLabelMagic, "label");
  if (bytes.size() < kLabelHeader)
    fail(path, "the file is truncated: " + std::to_string(bytes.size()) +
                   " bytes, too short for the 8-byte IDX label header");
  uint64_t count = be32(&bytes[4]);
  uint64_t expected = kLabelHeader + count;
  if (bytes.size() != expected) {
    std::string claim = "the header says " + std::to_string(count) + " labels (" + std::to_string(expected) +
                        " bytes with the header) but the data is " + std::to_string(bytes.size()) + " bytes";
    fail(path, claim + (bytes.size() < expected ? ": the file is truncated" : ": unexpected trailing bytes"));
  }
  for (size_t i = kLabelHeader; i < bytes.size(); ++i) {
    if (bytes[i] >= num_classes)
      fail(path, "label " + std::to_string(bytes[i]) + " at index " + std::to_string(i - kLabelHeader) +
                     " is out of range (labels must be 0.." + std::to_string(num_classes - 1) + ")");
  }
  IdxLabels out;
  out.count = static_cast<int64_t>(count);
  bytes.erase(bytes.begin(), bytes.begin() + kLabelHeader);
  out.labels = std::move(bytes);
  return out;
}

}  // namespace ddp::data
