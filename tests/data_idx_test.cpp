// The IDX reader against good files and a corpus of bad ones: every bad file
// must end in a UserError naming the file and the problem, never a crash or
// a huge allocation.
#include <gtest/gtest.h>

#include "data/idx.h"
#include "data_test_util.h"

namespace ddp::data {
namespace {

using testing::expect_user_error;
using testing::TempDir;

constexpr size_t kMiB = size_t{1} << 20;

TEST(IdxGood, PlainImagesRoundTrip) {
  TempDir dir;
  auto bytes = testing::image_file(5);
  std::string path = dir.file("img");
  testing::write_bytes(path, bytes);
  IdxImages im = read_idx_images(path);
  EXPECT_EQ(im.count, 5);
  EXPECT_EQ(im.rows, 28);
  EXPECT_EQ(im.cols, 28);
  ASSERT_EQ(im.pixels.size(), 5u * 784u);
  EXPECT_TRUE(std::equal(im.pixels.begin(), im.pixels.end(), bytes.begin() + 16));
}

TEST(IdxGood, GzipImagesRoundTripWhateverTheName) {
  TempDir dir;
  auto bytes = testing::image_file(7);
  for (std::string name : {"img.gz", "img-no-suffix"}) {
    std::string path = dir.file(name);
    testing::write_bytes(path, testing::gzip(bytes));
    IdxImages im = read_idx_images(path);
    EXPECT_EQ(im.count, 7) << name;
    ASSERT_EQ(im.pixels.size(), 7u * 784u) << name;
    EXPECT_TRUE(std::equal(im.pixels.begin(), im.pixels.end(), bytes.begin() + 16)) << name;
  }
}

TEST(IdxGood, LabelsRoundTripPlainAndGzip) {
  TempDir dir;
  auto bytes = testing::label_file(100);
  testing::write_bytes(dir.file("l"), bytes);
  testing::write_bytes(dir.file("l.gz"), testing::gzip(bytes));
  for (std::string name : {"l", "l.gz"}) {
    IdxLabels lb = read_idx_labels(dir.file(name));
    EXPECT_EQ(lb.count, 100) << name;
    ASSERT_EQ(lb.labels.size(), 100u) << name;
    EXPECT_TRUE(std::equal(lb.labels.begin(), lb.labels.end(), bytes.begin() + 8)) << name;
  }
}

TEST(IdxGood, ConcatenatedGzipMembers) {
  TempDir dir;
  auto bytes = testing::image_file(3);
  std::vector<uint8_t> a(bytes.begin(), bytes.begin() + 1000), b(bytes.begin() + 1000, bytes.end());
  auto gz = testing::gzip(a);
  auto gz2 = testing::gzip(b);
  gz.insert(gz.end(), gz2.begin(), gz2.end());
  testing::write_bytes(dir.file("cat.gz"), gz);
  EXPECT_EQ(read_file_bytes(dir.file("cat.gz"), kMiB), bytes);
}

TEST(IdxGood, ZeroImagesIsAValidFile) {
  TempDir dir;
  testing::write_bytes(dir.file("z"), testing::image_header(0));
  EXPECT_EQ(read_idx_images(dir.file("z")).count, 0);
}

TEST(IdxGood, OtherDimensionsWhenAsked) {
  TempDir dir;
  testing::write_bytes(dir.file("i"), testing::image_file(2, 27, 28));
  IdxImages im = read_idx_images(dir.file("i"), 27, 28);
  EXPECT_EQ(im.rows, 27);
  EXPECT_EQ(im.pixels.size(), 2u * 27u * 28u);
}

TEST(IdxBad, MissingFile) {
  TempDir dir;
  std::string path = dir.file("nope");
  expect_user_error([&] { read_idx_images(path); }, path, "no such file");
  expect_user_error([&] { read_idx_labels(path); }, path, "no such file");
}

TEST(IdxBad, DirectoryInsteadOfFile) {
  TempDir dir;
  expect_user_error([&] { read_idx_images(dir.str()); }, dir.str(), "is a directory");
}

TEST(IdxBad, EmptyFile) {
  TempDir dir;
  for (std::string name : {"empty", "empty.gz"}) {
    std::string path = dir.file(name);
    testing::write_bytes(path, {});
    expect_user_error([&] { read_idx_images(path); }, path, "empty");
    expect_user_error([&] { read_idx_labels(path); }, path, "empty");
  }
}

TEST(IdxBad, ShorterThanHeader) {
  TempDir dir;
  std::string path = dir.file("short");
  auto h = testing::image_header(1);
  h.resize(10);
  testing::write_bytes(path, h);
  expect_user_error([&] { read_idx_images(path); }, path, "truncated");
}

TEST(IdxBad, TruncatedImages) {
  TempDir dir;
  std::string path = dir.file("trunc");
  auto bytes = testing::image_file(10);
  bytes.resize(bytes.size() - 100);
  testing::write_bytes(path, bytes);
  expect_user_error([&] { read_idx_images(path); }, path, "truncated");
}

TEST(IdxBad, TruncatedLabels) {
  TempDir dir;
  std::string path = dir.file("trunc");
  auto bytes = testing::label_file(10);
  bytes.pop_back();
  testing::write_bytes(path, bytes);
  expect_user_error([&] { read_idx_labels(path); }, path, "truncated");
}

TEST(IdxBad, TrailingBytes) {
  TempDir dir;
  std::string path = dir.file("long");
  auto bytes = testing::image_file(2);
  bytes.push_back(0);
  testing::write_bytes(path, bytes);
  expect_user_error([&] { read_idx_images(path); }, path, "trailing bytes");
}

TEST(IdxBad, WrongMagic) {
  TempDir dir;
  std::string path = dir.file("magic");
  testing::write_bytes(path, testing::image_header(0, 28, 28, 0x12345678));
  expect_user_error([&] { read_idx_images(path); }, path, "bad magic number 0x12345678");
  expect_user_error([&] { read_idx_labels(path); }, path, "bad magic number 0x12345678");
}

TEST(IdxBad, LabelFileWhereImagesExpectedAndViceVersa) {
  TempDir dir;
  testing::write_bytes(dir.file("labels"), testing::label_file(3));
  testing::write_bytes(dir.file("images"), testing::image_file(3));
  expect_user_error([&] { read_idx_images(dir.file("labels")); }, dir.file("labels"), "an IDX label file");
  expect_user_error([&] { read_idx_labels(dir.file("images")); }, dir.file("images"), "an IDX image file");
}

TEST(IdxBad, HeaderClaimsTwoToThe31ImagesInASmallFile) {
  TempDir dir;
  std::string path = dir.file("huge-claim");
  auto bytes = testing::image_header(0x80000000u);
  bytes.resize(bytes.size() + 784 * 3, 0);
  testing::write_bytes(path, bytes);
  expect_user_error([&] { read_idx_images(path); }, path, "header says 2147483648 images");
  expect_user_error([&] { read_idx_images(path); }, path, "truncated");
  // The same claim in a gzip'd file.
  std::string gz = dir.file("huge-claim.gz");
  testing::write_bytes(gz, testing::gzip(bytes));
  expect_user_error([&] { read_idx_images(gz); }, gz, "header says 2147483648 images");
}

TEST(IdxBad, HeaderClaimsMaxLabels) {
  TempDir dir;
  std::string path = dir.file("huge-claim");
  auto bytes = testing::label_header(0xffffffffu);
  bytes.resize(bytes.size() + 20, 1);
  testing::write_bytes(path, bytes);
  expect_user_error([&] { read_idx_labels(path); }, path, "header says 4294967295 labels");
}

TEST(IdxBad, WrongDimensions) {
  TempDir dir;
  std::string path = dir.file("27x28");
  testing::write_bytes(path, testing::image_file(2, 27, 28));
  expect_user_error([&] { read_idx_images(path); }, path, "images are 27x28, expected 28x28");
  // Huge dimensions are rejected on sight, before any size arithmetic.
  std::string path2 = dir.file("huge-dims");
  testing::write_bytes(path2, testing::image_header(0xffffffffu, 0xffffffffu, 0xffffffffu));
  expect_user_error([&] { read_idx_images(path2); }, path2, "images are 4294967295x4294967295");
}

TEST(IdxBad, LabelOutOfRange) {
  TempDir dir;
  std::string path = dir.file("label10");
  auto bytes = testing::label_file(20);
  bytes[8 + 13] = 10;
  testing::write_bytes(path, bytes);
  expect_user_error([&] { read_idx_labels(path); }, path, "label 10 at index 13 is out of range");
  // Fewer classes make more labels out of range.
  std::string ok = dir.file("ok");
  testing::write_bytes(ok, testing::label_file(20));
  expect_user_error([&] { read_idx_labels(ok, 5); }, ok, "out of range (labels must be 0..4)");
}

TEST(IdxBad, CorruptGzip) {
  TempDir dir;
  std::string path = dir.file("corrupt.gz");
  auto gz = testing::gzip(testing::image_file(20));
  for (size_t i = 20; i < 60; ++i) gz[i] ^= 0x5a;  // scramble the deflate data
  testing::write_bytes(path, gz);
  expect_user_error([&] { read_idx_images(path); }, path, "corrupt gzip data (zlib:");
}

TEST(IdxBad, CorruptGzipHeader) {
  TempDir dir;
  std::string path = dir.file("badheader.gz");
  auto gz = testing::gzip(testing::image_file(1));
  gz[2] = 7;  // compression method other than deflate
  testing::write_bytes(path, gz);
  expect_user_error([&] { read_idx_images(path); }, path, "corrupt gzip data");
}

TEST(IdxBad, BadGzipChecksum) {
  TempDir dir;
  std::string path = dir.file("crc.gz");
  auto gz = testing::gzip(testing::image_file(2));
  gz[gz.size() - 8] ^= 1;  // CRC-32 in the trailer
  testing::write_bytes(path, gz);
  expect_user_error([&] { read_idx_images(path); }, path, "corrupt gzip data");
}

TEST(IdxBad, TruncatedGzip) {
  TempDir dir;
  std::string path = dir.file("trunc.gz");
  auto gz = testing::gzip(testing::image_file(50));
  gz.resize(gz.size() / 2);
  testing::write_bytes(path, gz);
  expect_user_error([&] { read_idx_images(path); }, path, "truncated");
}

TEST(IdxBad, GarbageAfterGzip) {
  TempDir dir;
  std::string path = dir.file("garbage.gz");
  auto gz = testing::gzip(testing::image_file(1));
  gz.push_back('x');
  gz.push_back('y');
  testing::write_bytes(path, gz);
  expect_user_error([&] { read_idx_images(path); }, path, "unexpected bytes after the end");
}

TEST(IdxBad, NamedGzButNotGzip) {
  TempDir dir;
  std::string path = dir.file("plain.gz");
  testing::write_bytes(path, testing::image_file(1));
  expect_user_error([&] { read_idx_images(path); }, path, "not gzip data");
}

TEST(IdxBad, GzipBombOverTheCap) {
  TempDir dir;
  std::string path = dir.file("bomb.gz");
  // A valid-looking header, then 80 MiB of zeros: about 80 KB compressed.
  size_t left = 80 * kMiB;
  bool header = true;
  auto gz = testing::gzip_stream([&](std::vector<uint8_t>& chunk) {
    if (header) {
      chunk = testing::image_header(static_cast<uint32_t>(left / 784));
      header = false;
      return true;
    }
    size_t n = std::min(left, kMiB);
    chunk.assign(n, 0);
    left -= n;
    return left > 0;
  });
  ASSERT_LT(gz.size(), 1 * kMiB);
  testing::write_bytes(path, gz);
  expect_user_error([&] { read_idx_images(path); }, path, "decompresses to more than 64 MiB");
  // The generic reader honours whatever cap it is given.
  expect_user_error([&] { read_file_bytes(path, 1000); }, path, "decompresses to more than 1000 bytes");
}

TEST(IdxBad, PlainFileOverTheCap) {
  TempDir dir;
  std::string path = dir.file("big");
  testing::write_bytes(path, std::vector<uint8_t>(5000, 0));
  expect_user_error([&] { read_file_bytes(path, 4096); }, path, "more than the 4096 bytes");
}

TEST(IdxBad, GzipOfNothing) {
  TempDir dir;
  std::string path = dir.file("nothing.gz");
  testing::write_bytes(path, testing::gzip({}));
  expect_user_error([&] { read_idx_labels(path); }, path, "empty");
}

}  // namespace
}  // namespace ddp::data
