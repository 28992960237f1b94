// Checkpoints and the safetensors format: exact round trips, the file layout
// against the spec (parsed independently, here and in plain Python), hostile
// and corrupt files, atomic writes under a file size limit, and finding the
// newest checkpoint.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "common/error.h"
#include "data/idx.h"
#include "nn/cnn.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using ddp::UserError;
using ddp::nn::Cnn;
using namespace ddp::train;
using Bytes = std::vector<uint8_t>;

using test_util::TempDir;

Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Random values plus the awkward ones: -0, infinities, denormals, NaNs with
// payloads (a bitwise round trip must keep them all).
std::vector<float> awkward_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = from_bits(static_cast<uint32_t>(rng()));
  const float specials[] = {0.f, -0.f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::denorm_min(),
                            from_bits(0x7fc00001u), from_bits(0xffbadbadu), 1.f};
  for (size_t i = 0; i < std::size(specials) && i < n; ++i) v[i] = specials[i];
  return v;
}

CheckpointData sample_checkpoint(uint32_t seed = 1) {
  CheckpointData d;
  d.params = awkward_floats(Cnn::num_params(), seed);
  d.momentum = awkward_floats(Cnn::num_params(), seed + 100);
  d.metadata = {{"epoch", "3"},
                {"step", "2811"},
                {"seed", "42"},
                {"config", R"({"lr": 0.01, "batch_size": 64, "note": "quotes \" and\nnewlines, ünïcödé"})"},
                {"data_checksum", "0123456789abcdef"},
                {"rng_state", std::string("binary-ish \x01\x02 text")},
                {"empty", ""}};
  return d;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// A safetensors file from a literal header (padded here) and data bytes.
Bytes make_file(const std::string& header, const Bytes& data, bool pad = true) {
  std::string h = header;
  if (pad) h.append((8 - h.size() % 8) % 8, ' ');
  Bytes out(8);
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// parse_safetensors must throw a UserError naming the source and containing
// `want`; returns the message.
std::string parse_error(const Bytes& b, const std::string& want) {
  try {
    parse_safetensors(b.data(), b.size(), "test.safetensors");
  } catch (const UserError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("test.safetensors: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(want), std::string::npos) << "message: " << msg << "\nwanted: " << want;
    EXPECT_FALSE(e.hint().empty());
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a UserError: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no error; wanted: " << want;
  return "";
}

std::string load_error(const std::string& path) {
  try {
    load_checkpoint(path);
  } catch (const UserError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    return msg;
  }
  ADD_FAILURE() << "load_checkpoint(" << path << ") did not fail";
  return "";
}

const Bytes k8Bytes = {0, 0, 128, 63, 0, 0, 0, 64};  // 1.0f, 2.0f

// ------------------------------------------------------------ safetensors --

TEST(Safetensors, RoundTripSmall) {
  const std::vector<float> a = {1.5f, -2.f, 3.25f, 0.f, -0.f, 7.f}, s = {42.f};
  std::vector<TensorRef> t = {{"a", {2, 3}, a.data()}, {"empty", {0, 5}, nullptr}, {"scalar", {}, s.data()}};
  Bytes b = encode_safetensors({{"k", "v"}}, t);
  SafetensorsContents c = parse_safetensors(b.data(), b.size(), "mem");
  EXPECT_EQ(c.metadata, (std::map<std::string, std::string>{{"k", "v"}}));
  ASSERT_EQ(c.tensors.size(), 3u);
  EXPECT_EQ(c.tensors["a"].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(same_bits(c.tensors["a"].data, a));
  EXPECT_EQ(c.tensors["empty"].shape, (std::vector<int64_t>{0, 5}));
  EXPECT_TRUE(c.tensors["empty"].data.empty());
  EXPECT_TRUE(c.tensors["scalar"].shape.empty());
  EXPECT_TRUE(same_bits(c.tensors["scalar"].data, s));
}

TEST(Safetensors, NoMetadataNoTensors) {
  Bytes b = encode_safetensors({}, {});
  ASSERT_EQ(b.size(), 16u);  // length + "{}" padded to 8
  SafetensorsContents c = parse_safetensors(b.data(), b.size(), "mem");
  EXPECT_TRUE(c.metadata.empty());
  EXPECT_TRUE(c.tensors.empty());
}

TEST(Safetensors, AcceptsUnpaddedHeaderAndAnyOrder) {
  // Other writers may not pad, and may put data in any order.
  Bytes b = make_file(R"({"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                      R"("x":{"shape":[1],"data_offsets":[0,4],"dtype":"F32"}})",
                      k8Bytes, false);
  SafetensorsContents c = parse_safetensors(b.data(), b.size(), "mem");
  EXPECT_EQ(c.tensors["x"].data, std::vector<float>{1.f});
  EXPECT_EQ(c.tensors["y"].data, std::vector<float>{2.f});
}

TEST(Safetensors, TruncatedFileIsRejected) {
  const std::vector<float> a(10, 1.f);
  Bytes full = encode_safetensors({{"k", "v"}}, {{"a", {10}, a.data()}});
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | full[i];
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}}) {
    Bytes b(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut));
    parse_error(b, "too short for the 8-byte header length");
  }
  for (size_t cut : {size_t{8}, size_t{9}, size_t{8 + n / 2}, size_t{8 + n - 1}}) {
    Bytes b(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut));
    parse_error(b, "past the end of the");
  }
  for (size_t cut : {size_t{8 + n}, size_t{8 + n + 1}, full.size() - 1}) {
    Bytes b(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut));
    parse_error(b, "past the end of the " + std::to_string(cut - 8 - n) + "-byte data section");
  }
}

TEST(Safetensors, HugeHeaderLengthIsRejectedWithoutAllocating) {
  Bytes b = make_file("{}", {});
  for (uint64_t n : {uint64_t{100'000'001}, uint64_t{1} << 40, ~uint64_t{0}}) {
    for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(n >> (8 * i));
    parse_error(b, "more than the 100000000-byte limit");
  }
  uint64_t n = 9;  // one byte more than the file holds
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(n >> (8 * i));
  parse_error(b, "header length is 9 bytes, past the end of the 16-byte file");
}

TEST(Safetensors, BadJsonIsRejected) {
  parse_error(make_file(R"({"a": )", {}), "the header is not valid JSON");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}} x)", {}), "not valid JSON");
  parse_error(make_file("", {}), "not valid JSON");
  parse_error(make_file(std::string("{\"\xff\":1}"), {}), "not valid JSON");  // not UTF-8
  parse_error(make_file(std::string(8, '\0'), {}), "not valid JSON");
}

TEST(Safetensors, WrongStructureIsRejected) {
  parse_error(make_file("[]", {}), "the header is an array, not a JSON object");
  parse_error(make_file(R"({"a": 3})", {}), R"(the entry for "a" is a number, not an object)");
  parse_error(make_file(R"({"a": [1]})", {}), R"(the entry for "a" is an array, not an object)");
  parse_error(make_file(R"({"__metadata__": {"k": 1}})", {}), R"(__metadata__ value of "k" is a number, not a string)");
  parse_error(make_file(R"({"__metadata__": {"k": {}}})", {}), R"(__metadata__ value of "k" is an object)");
  parse_error(make_file(R"({"__metadata__": "x"})", {}), "__metadata__ is a string, not an object of strings");
  parse_error(make_file(R"({"__metadata__": {"k": "a", "k": "b"}})", {}), R"(__metadata__ has the key "k" twice)");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[1]}})", {}), R"(tensor "a" has no "data_offsets")");
  parse_error(make_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", k8Bytes), R"(tensor "a" has no "shape")");
  parse_error(make_file(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", k8Bytes), R"(tensor "a" has no "dtype")");
  parse_error(make_file(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", k8Bytes),
              R"(has the field "dtype" twice)");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", k8Bytes),
              R"(unknown field "extra")");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", k8Bytes),
              "shape holds a negative number");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", k8Bytes),
              "shape holds a number that is not a non-negative integer");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", k8Bytes),
              "shape is a number, not an array");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", k8Bytes),
              "data_offsets must be [begin, end], it has more than 2 numbers");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}})", k8Bytes),
              "data_offsets must be [begin, end], it has 1 numbers");
  parse_error(make_file(R"({"a":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", k8Bytes),
              "dtype is a number, not a string");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", k8Bytes),
              "shape holds an array");
  parse_error(make_file(std::string(4000, '[') + std::string(4000, ']'), {}), "the header is an array");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[)" + std::string(200, '1') + "]}}", {}),
              "not a non-negative integer (or too large)");
}

TEST(Safetensors, DuplicateNamesAreRejected) {
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        k8Bytes),
              R"(the name "a" appears twice in the header)");
  parse_error(make_file(R"({"__metadata__":{},"__metadata__":{}})", {}), "appears twice");
}

TEST(Safetensors, WrongDtypeIsRejected) {
  parse_error(make_file(R"({"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})", k8Bytes),
              R"(tensor "a" has dtype "F16"; only F32 is supported)");
  parse_error(make_file(R"({"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}})", k8Bytes), "only F32");
}

TEST(Safetensors, BadOffsetsAreRejected) {
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        k8Bytes),
              R"(the data of tensors "a" and "b" overlap)");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", k8Bytes),
              "bytes 0..4 of the data section belong to no tensor");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", k8Bytes),
              "the tensors cover 4 bytes but the data section is 8 bytes: unexpected trailing bytes");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", k8Bytes),
              "begin is after end");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", k8Bytes),
              "past the end of the 8-byte data section");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})", k8Bytes),
              "past the end");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", k8Bytes),
              R"(tensor "a" has shape [1] (1 floats, 4 bytes) but its data_offsets span 8 bytes)");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}})", k8Bytes),
              "too many elements");
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[9223372036854775808,0],"data_offsets":[0,0]}})", {}),
              "too large");
  // A zero-size tensor inside another's bytes.
  parse_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                        k8Bytes),
              "overlap");
}

TEST(Safetensors, FileErrorsNameThePath) {
  TempDir dir;
  try {
    read_safetensors(dir / "nope.safetensors");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), dir / "nope.safetensors" + ": no such file");
  }
  try {
    read_safetensors(dir.str());
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos);
  }
  write_bytes(dir / "big", Bytes(100, 0));
  try {
    read_safetensors(dir / "big", 99);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("is 100 bytes, more than the 99 bytes"), std::string::npos);
  }
}

// ------------------------------------------------------------- checkpoint --

TEST(Checkpoint, RoundTripIsBitwiseExact) {
  TempDir dir;
  const CheckpointData d = sample_checkpoint();
  const std::string path = checkpoint_path(dir.str(), 3);
  save_checkpoint(path, d);
  CheckpointData r = load_checkpoint(path);
  EXPECT_TRUE(same_bits(r.params, d.params));
  EXPECT_TRUE(same_bits(r.momentum, d.momentum));
  auto want = d.metadata;
  want["format_version"] = kCheckpointFormatVersion;
  want["format"] = "pt";
  EXPECT_EQ(r.metadata, want);
  EXPECT_EQ(dir.names(), std::vector<std::string>{"checkpoint_epoch3.safetensors"});  // no temp file left

  // Saving what was loaded gives the same bytes.
  const Bytes first = read_bytes(path);
  save_checkpoint(path, r);
  EXPECT_EQ(read_bytes(path), first);
}

TEST(Checkpoint, FileLayoutMatchesTheSafetensorsSpec) {
  TempDir dir;
  const CheckpointData d = sample_checkpoint(7);
  const std::string path = dir / "c.safetensors";
  save_checkpoint(path, d);
  const Bytes b = read_bytes(path);

  ASSERT_GE(b.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[i];
  ASSERT_LE(8 + n, b.size());
  EXPECT_EQ(n % 8, 0u) << "the header is padded to a multiple of 8";
  const std::string header(b.begin() + 8, b.begin() + 8 + static_cast<ptrdiff_t>(n));
  EXPECT_EQ(header[0], '{');
  const auto h = nlohmann::json::parse(header);
  ASSERT_TRUE(h.is_object());

  ASSERT_TRUE(h.contains("__metadata__"));
  for (const auto& [k, v] : h["__metadata__"].items()) {
    ASSERT_TRUE(v.is_string()) << k;
    if (d.metadata.count(k)) {
      EXPECT_EQ(v.get<std::string>(), d.metadata.at(k));
    }
  }
  EXPECT_EQ(h["__metadata__"]["format"], "pt");

  const uint64_t data_size = b.size() - 8 - n;
  const uint8_t* data = b.data() + 8 + n;
  const auto& specs = Cnn::param_specs();
  EXPECT_EQ(h.size(), 1 + 2 * specs.size());
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (int which = 0; which < 2; ++which) {
    for (const auto& s : specs) {
      const std::string name = (which ? std::string(kMomentumPrefix) : std::string()) + s.name;
      ASSERT_TRUE(h.contains(name)) << name;
      const auto& t = h[name];
      EXPECT_EQ(t.size(), 3u);
      EXPECT_EQ(t["dtype"], "F32");
      EXPECT_EQ(t["shape"].get<std::vector<long>>(), s.shape) << name;
      const auto off = t["data_offsets"].get<std::vector<uint64_t>>();
      ASSERT_EQ(off.size(), 2u);
      ASSERT_LE(off[0], off[1]);
      ASSERT_LE(off[1], data_size);
      EXPECT_EQ(off[1] - off[0], 4 * s.count);
      spans.emplace_back(off[0], off[1]);
      const std::vector<float>& src = which ? d.momentum : d.params;
      EXPECT_EQ(std::memcmp(data + off[0], src.data() + s.offset, 4 * s.count), 0) << name;
    }
  }
  std::sort(spans.begin(), spans.end());
  uint64_t at = 0;
  for (auto [begin, end] : spans) {
    EXPECT_EQ(begin, at);
    at = end;
  }
  EXPECT_EQ(at, data_size) << "the tensors tile the data section exactly";
  EXPECT_EQ(data_size, 2 * 4 * Cnn::num_params());
  // The PyTorch names and shapes of the spec.
  EXPECT_EQ(h["conv1.weight"]["shape"], nlohmann::json({32, 1, 3, 3}));
  EXPECT_EQ(h["conv2.weight"]["shape"], nlohmann::json({64, 32, 3, 3}));
  EXPECT_EQ(h["fc1.weight"]["shape"], nlohmann::json({128, 3136}));
  EXPECT_EQ(h["fc2.bias"]["shape"], nlohmann::json({10}));
  EXPECT_TRUE(h.contains("optimizer.momentum.fc1.bias"));
}

// Plain Python (struct + json, no numpy or safetensors needed) reads the file
// the way safetensors does and reports every tensor's shape and checksum.
TEST(Checkpoint, PlainPythonReadsTheLayout) {
  if (std::system("python3 -c 'import json, struct' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3";
  TempDir dir;
  CheckpointData d = sample_checkpoint(3);
  for (size_t i = 0; i < d.params.size(); ++i) {  // finite values, so sums are comparable
    d.params[i] = static_cast<float>(i % 1000) * 0.001f - 0.5f;
    d.momentum[i] = static_cast<float>(i % 77) * -0.25f;
  }
  const std::string path = dir / "p.safetensors";
  save_checkpoint(path, d);
  const std::string script = dir / "read.py";
  {
    std::ofstream py(script);
    py << R"PY(import json, struct, sys
with open(sys.argv[1], 'rb') as f:
    b = f.read()
(n,) = struct.unpack('<Q', b[:8])
h = json.loads(b[8:8 + n].decode('utf-8'))
data = b[8 + n:]
meta = h.pop('__metadata__')
assert all(isinstance(v, str) for v in meta.values())
end = 0
for name in sorted(h, key=lambda k: h[k]['data_offsets']):
    t = h[name]
    assert t['dtype'] == 'F32', name
    s, e = t['data_offsets']
    assert s == end, name
    count = 1
    for d in t['shape']:
        count *= d
    assert e - s == 4 * count, name
    vals = struct.unpack('<%df' % count, data[s:e])
    print(name, ','.join(map(str, t['shape'])), '%.6f' % sum(vals))
    end = e
assert end == len(data)
print('epoch', meta['epoch'])
)PY";
  }
  FILE* p = popen(("python3 '" + script + "' '" + path + "'").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t k = fread(buf, 1, sizeof buf, p)) out.append(buf, k);
  ASSERT_EQ(pclose(p), 0) << out;

  std::string want;
  for (int which = 0; which < 2; ++which) {
    for (const auto& s : Cnn::param_specs()) {
      const std::vector<float>& src = which ? d.momentum : d.params;
      double sum = 0;
      for (size_t i = 0; i < s.count; ++i) sum += src[s.offset + i];
      std::string shape;
      for (long x : s.shape) shape += (shape.empty() ? "" : ",") + std::to_string(x);
      char line[256];
      std::snprintf(line, sizeof line, "%s%s %s %.6f\n", which ? kMomentumPrefix : "", s.name.c_str(),
                    shape.c_str(), sum);
      want += line;
    }
  }
  want += "epoch 3\n";
  EXPECT_EQ(out, want);
}

// Writes a checkpoint-like file with the given tensors replaced/removed/added.
void write_variant(const std::string& path, const CheckpointData& d,
                   const std::function<void(std::vector<TensorRef>&)>& edit,
                   std::map<std::string, std::string> metadata = {{"format_version", "1"}}) {
  std::vector<TensorRef> t = checkpoint_tensors(d, Cnn::param_specs());
  edit(t);
  write_safetensors(path, metadata, t);
}

TEST(Checkpoint, ShapeMismatchSaysWhatDiffers) {
  TempDir dir;
  const CheckpointData d = sample_checkpoint();
  const std::string path = dir / "c.safetensors";
  std::vector<float> other(64 * 16 * 9, 0.5f);
  write_variant(path, d, [&](std::vector<TensorRef>& t) {
    for (auto& x : t)
      if (x.name == "conv2.weight") x = {"conv2.weight", {64, 16, 3, 3}, other.data()};
  });
  EXPECT_EQ(load_error(path), path + ": conv2.weight has shape [64,16,3,3], this program's model has [64,32,3,3]");

  write_variant(path, d, [&](std::vector<TensorRef>& t) {
    for (auto& x : t)
      if (x.name == "optimizer.momentum.fc1.bias") x.shape = {2, 64};
  });
  EXPECT_EQ(load_error(path),
            path + ": optimizer.momentum.fc1.bias has shape [2,64], this program's model has [128]");
}

TEST(Checkpoint, MissingOrExtraTensorIsRejected) {
  TempDir dir;
  const CheckpointData d = sample_checkpoint();
  const std::string path = dir / "c.safetensors";
  write_variant(path, d, [](std::vector<TensorRef>& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [](const TensorRef& x) { return x.name == "fc2.bias"; }), t.end());
  });
  std::string msg = load_error(path);
  EXPECT_NE(msg.find("the tensor fc2.bias is missing (the file has 15 tensors: conv1.bias, "), std::string::npos)
      << msg;

  // A PyTorch state_dict alone (no momentum) is not a checkpoint.
  write_variant(path, d, [](std::vector<TensorRef>& t) { t.resize(8); });
  msg = load_error(path);
  EXPECT_NE(msg.find("the tensor optimizer.momentum.conv1.weight is missing"), std::string::npos) << msg;

  std::vector<float> extra(5, 1.f);
  write_variant(path, d, [&](std::vector<TensorRef>& t) { t.push_back({"conv3.weight", {5}, extra.data()}); });
  EXPECT_EQ(load_error(path), path + ": it has a tensor this program's model does not have: conv3.weight [5]");
}

TEST(Checkpoint, OtherFormatVersionIsRejected) {
  TempDir dir;
  const std::string path = dir / "c.safetensors";
  write_variant(path, sample_checkpoint(), [](std::vector<TensorRef>&) {}, {{"format_version", "99"}});
  EXPECT_EQ(load_error(path), path + ": checkpoint format version 99; this program reads version 1");
}

TEST(Checkpoint, CorruptFilesAreUserErrors) {
  TempDir dir;
  const std::string good = dir / "good.safetensors", bad = dir / "bad.safetensors";
  save_checkpoint(good, sample_checkpoint());
  const Bytes full = read_bytes(good);
  // Truncated anywhere: in the length, the header, the data, the last byte.
  for (size_t cut : {size_t{0}, size_t{5}, size_t{8}, size_t{100}, full.size() / 2, full.size() - 1}) {
    write_bytes(bad, Bytes(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut)));
    std::string msg = load_error(bad);
    EXPECT_TRUE(msg.find("too short") != std::string::npos || msg.find("past the end") != std::string::npos)
        << "cut at " << cut << ": " << msg;
  }
  // One byte too many.
  Bytes longer = full;
  longer.push_back(0);
  write_bytes(bad, longer);
  EXPECT_NE(load_error(bad).find("unexpected trailing bytes"), std::string::npos);
  // A huge header length.
  Bytes huge = full;
  huge[7] = 0x7f;
  write_bytes(bad, huge);
  EXPECT_NE(load_error(bad).find("more than the 100000000-byte limit"), std::string::npos);
  // Garbage in the header.
  Bytes garbled = full;
  garbled[8] = 'x';
  write_bytes(bad, garbled);
  EXPECT_NE(load_error(bad).find("not valid JSON"), std::string::npos);
  // Not a safetensors file at all.
  write_bytes(bad, Bytes(4096, 0xab));
  EXPECT_NE(load_error(bad).find("more than the 100000000-byte limit"), std::string::npos);
  // The good one is still fine.
  EXPECT_NO_THROW(load_checkpoint(good));
}

// With RLIMIT_FSIZE below the checkpoint's size (in a child, so this process
// keeps its limits), the save fails with EFBIG instead of a SIGXFSZ kill; the
// previous checkpoint is unchanged and no temp file remains.
TEST(Checkpoint, AtomicWriteUnderFileSizeLimit) {
  TempDir dir;
  const std::string path = checkpoint_path(dir.str(), 1);
  save_checkpoint(path, sample_checkpoint(1));
  const Bytes before = read_bytes(path);
  ASSERT_GT(before.size(), 1u << 20);

  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    struct rlimit lim {
      1 << 20, 1 << 20
    };
    int code = 3;
    std::string msg;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
      code = 4;
    } else {
      try {
        save_checkpoint(path, sample_checkpoint(2));
        code = 2;
      } catch (const UserError& e) {
        msg = std::string(e.what()) + "\nhint: " + e.hint();
        code = 0;
      } catch (...) {
        code = 3;
      }
    }
    if (write(fds[1], msg.data(), msg.size()) < 0) code = 5;
    close(fds[1]);
    _exit(code);
  }
  close(fds[1]);
  std::string msg;
  char buf[1024];
  ssize_t k;
  while ((k = read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(k));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  ASSERT_EQ(WEXITSTATUS(status), 0) << "2: the save succeeded, 3: not a UserError, 4: setrlimit failed";
  EXPECT_NE(msg.find(path + ": cannot write: file too large"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ulimit -f"), std::string::npos) << msg;
  EXPECT_NE(msg.find("previous file there is unchanged"), std::string::npos) << msg;
  EXPECT_EQ(read_bytes(path), before) << "the previous checkpoint must be byte-identical";
  EXPECT_EQ(dir.names(), std::vector<std::string>{"checkpoint_epoch1.safetensors"}) << "no temp file remains";
}

TEST(Checkpoint, UnwritableDirectoryIsAUserError) {
  TempDir dir;
  const std::string path = dir / "missing/sub/c.safetensors";
  try {
    save_checkpoint(path, sample_checkpoint());
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": cannot write: the directory does not exist"), std::string::npos)
        << e.what();
    EXPECT_NE(e.hint().find("mkdir -p"), std::string::npos);
  }
  // A directory where the file should go: the rename fails, the temp file goes.
  fs::create_directory(dir / "c.safetensors");
  EXPECT_THROW(save_checkpoint(dir / "c.safetensors", sample_checkpoint()), UserError);
  EXPECT_EQ(dir.names(), std::vector<std::string>{"c.safetensors"});
}

TEST(Checkpoint, PathAndNewest) {
  EXPECT_EQ(checkpoint_path("/x/y", 12), "/x/y/checkpoint_epoch12.safetensors");
  EXPECT_EQ(checkpoint_path("/x/y/", 0), "/x/y/checkpoint_epoch0.safetensors");
  TempDir dir;
  for (int e : {1, 2, 9, 10}) write_bytes(checkpoint_path(dir.str(), e), {1});
  // Not checkpoints: temp files, other names, a directory, a number too long.
  write_bytes(dir / "checkpoint_epoch11.safetensors.tmp.123", {1});
  write_bytes(dir / "checkpoint_epochX.safetensors", {1});
  write_bytes(dir / "checkpoint_epoch.safetensors", {1});
  write_bytes(dir / "checkpoint_epoch-12.safetensors", {1});
  write_bytes(dir / "checkpoint_epoch99999999999999999999999.safetensors", {1});
  write_bytes(dir / "xcheckpoint_epoch50.safetensors", {1});
  fs::create_directory(dir / "checkpoint_epoch77.safetensors");
  EXPECT_EQ(newest_checkpoint(dir.str()), checkpoint_path(dir.str(), 10));  // 10 > 9 as numbers
  write_bytes(dir / "checkpoint_epoch010.safetensors", {1});
  EXPECT_EQ(newest_checkpoint(dir.str()), checkpoint_path(dir.str(), 10));  // the canonical spelling wins a tie
}

TEST(Checkpoint, NewestWithoutCheckpointsIsAUserError) {
  TempDir dir;
  try {
    newest_checkpoint(dir.str());
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.str() + ": no checkpoint"), std::string::npos) << e.what();
  }
  EXPECT_THROW(newest_checkpoint(dir / "nonexistent"), UserError);
}

// --------------------------------------------------- fuzzing regressions --
// Inputs that fuzz/ found; each is also replayed by scripts/fuzz.sh from
// fuzz/regressions/<target>/.

// idx_fuzz, fuzz/regressions/idx/gzip_isize_hint_allocates_64mib (its first
// byte is the fuzzer's mode: images 2x3, named *.gz): a 35-byte gzip file
// whose trailer claims ISIZE 0xffffffff. src/data/idx.cpp (inflate_file) used
// to size its first output buffer from that claim, capped only by max_bytes
// (64 MiB + 1 for an image file); it is now also capped by what the
// compressed size can produce (deflate expands at most ~1032x).
TEST(IdxFuzzRegressions, GzipTrailerDoesNotDriveAllocation) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "RLIMIT_AS does not mix with AddressSanitizer's shadow memory";
#endif
  TempDir dir;
  Bytes f = read_bytes(DDP_SOURCE_DIR "/fuzz/regressions/idx/gzip_isize_hint_allocates_64mib");
  ASSERT_EQ(f.size(), 36u);
  f.erase(f.begin());
  const std::string path = dir / "images.idx.gz";
  write_bytes(path, f);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Allow 32 MiB more address space than the child has now.
    long pages = 0;
    if (FILE* statm = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(statm, "%ld", &pages) != 1) pages = 0;
      std::fclose(statm);
    }
    if (pages <= 0) _exit(4);
    const rlim_t limit = static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) + (32u << 20);
    struct rlimit lim {
      limit, limit
    };
    if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(4);
    try {
      ddp::data::read_idx_images(path, 2, 3);
      _exit(3);
    } catch (const UserError&) {
      _exit(0);
    } catch (const std::bad_alloc&) {
      _exit(1);
    } catch (...) {
      _exit(2);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: it allocated > 32 MiB for a 35-byte file; 2: not a UserError; "
                                       "3: accepted a corrupt file; 4: setup failed";
}

}  // namespace
