// Helpers for the data tests: a private temp directory and writers for
// plain and gzip'd IDX files, good or deliberately bad.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "test_util.h"

namespace ddp::data::testing {

namespace fs = std::filesystem;

using test_util::TempDir;

inline void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  v.push_back(static_cast<uint8_t>(x >> 24));
  v.push_back(static_cast<uint8_t>(x >> 16));
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}

inline std::vector<uint8_t> image_header(uint32_t count, uint32_t rows = 28, uint32_t cols = 28,
                                         uint32_t magic = 0x00000803) {
  std::vector<uint8_t> v;
  put_be32(v, magic);
  put_be32(v, count);
  put_be32(v, rows);
  put_be32(v, cols);
  return v;
}

inline std::vector<uint8_t> label_header(uint32_t count, uint32_t magic = 0x00000801) {
  std::vector<uint8_t> v;
  put_be32(v, magic);
  put_be32(v, count);
  return v;
}

// A valid image file's bytes with deterministic, varied pixels.
inline std::vector<uint8_t> image_file(uint32_t count, uint32_t rows = 28, uint32_t cols = 28) {
  std::vector<uint8_t> v = image_header(count, rows, cols);
  for (uint64_t i = 0; i < uint64_t{count} * rows * cols; ++i) v.push_back(static_cast<uint8_t>((i * 131 + 7) % 256));
  return v;
}

inline std::vector<uint8_t> label_file(uint32_t count, int classes = 10) {
  std::vector<uint8_t> v = label_header(count);
  for (uint32_t i = 0; i < count; ++i) v.push_back(static_cast<uint8_t>((i * 7 + 3) % classes));
  return v;
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

// gzip-compresses what `produce` emits, chunk by chunk (so a large
// decompressed size needs no large buffer here).
inline std::vector<uint8_t> gzip_stream(const std::function<bool(std::vector<uint8_t>&)>& produce) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY), Z_OK);
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk;
  uint8_t buf[1 << 16];
  bool more = true;
  while (more) {
    chunk.clear();
    more = produce(chunk);
    zs.next_in = chunk.data();
    zs.avail_in = static_cast<uInt>(chunk.size());
    int flush = more ? Z_NO_FLUSH : Z_FINISH;
    int ret;
    do {
      zs.next_out = buf;
      zs.avail_out = sizeof buf;
      ret = deflate(&zs, flush);
      out.insert(out.end(), buf, buf + (sizeof buf - zs.avail_out));
    } while (zs.avail_out == 0 || (flush == Z_FINISH && ret != Z_STREAM_END));
  }
  deflateEnd(&zs);
  return out;
}

inline std::vector<uint8_t> gzip(const std::vector<uint8_t>& data) {
  bool done = false;
  return gzip_stream([&](std::vector<uint8_t>& chunk) {
    if (!done) chunk = data;
    done = true;
    return false;
  });
}

// Runs f, which must throw ddp::UserError whose message contains both
// `path` and `phrase` (and carries a hint).
template <class F>
void expect_user_error(F&& f, const std::string& path, const std::string& phrase) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one mentioning '" << phrase << "' for " << path;
  } catch (const ddp::UserError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << "message does not name " << path << ": " << what;
    EXPECT_NE(what.find(phrase), std::string::npos) << "message lacks '" << phrase << "': " << what;
    EXPECT_FALSE(e.hint().empty()) << "no hint for: " << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw something other than UserError: " << e.what();
  }
}

}  // namespace ddp::data::testing
