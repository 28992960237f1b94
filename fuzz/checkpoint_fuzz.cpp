// libFuzzer target: the safetensors reader (src/train/safetensors.h) and the
// checkpoint checks on top of it (checkpoint_from_contents).
//
// A ddp::UserError is the expected outcome of a bad file; anything else (a
// crash, a sanitizer report, another exception) is a bug. A file that parses
// must also survive a round trip: written back and parsed again, it gives
// exactly the same metadata, names, shapes and bits.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "nn/cnn.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"

// checkpoint.cpp's load_checkpoint/save_checkpoint refer to the model's specs;
// the fuzzer has no oneDNN model, so it defines them over a tiny one
// (the seeds in corpus/checkpoint are checkpoints of it).
namespace ddp::nn {
const std::vector<ParamSpec>& Cnn::param_specs() {
  static const std::vector<ParamSpec> specs = {{"w", {2, 3}, 0, 6, 3}, {"b", {2}, 6, 2, 3}};
  return specs;
}
size_t Cnn::num_params() { return 8; }
}  // namespace ddp::nn

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "checkpoint_fuzz: broken promise: %s\n", what);
    std::abort();
  }
}

void round_trip(const ddp::train::SafetensorsContents& c) {
  using namespace ddp::train;
  std::vector<TensorRef> refs;
  for (const auto& [name, t] : c.tensors) refs.push_back({name, t.shape, t.data.data()});
  const std::vector<uint8_t> bytes = encode_safetensors(c.metadata, refs);
  const SafetensorsContents again = parse_safetensors(bytes.data(), bytes.size(), "round trip");
  check(again.metadata == c.metadata, "metadata survives a round trip");
  check(again.tensors.size() == c.tensors.size(), "tensor count survives a round trip");
  for (const auto& [name, t] : c.tensors) {
    auto it = again.tensors.find(name);
    check(it != again.tensors.end(), "names survive a round trip");
    check(it->second.shape == t.shape, "shapes survive a round trip");
    check(it->second.data.size() == t.data.size() &&
              (t.data.empty() || std::memcmp(it->second.data.data(), t.data.data(), 4 * t.data.size()) == 0),
          "data survives a round trip bit for bit");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddp::train;
  SafetensorsContents c;
  try {
    c = parse_safetensors(data, size, "fuzz.safetensors");
  } catch (const ddp::UserError& e) {
    check(std::strncmp(e.what(), "fuzz.safetensors: ", 18) == 0, "the message starts with the file name");
    return 0;
  }
  round_trip(c);
  try {
    CheckpointData d = checkpoint_from_contents(std::move(c), ddp::nn::Cnn::param_specs(), "fuzz.safetensors");
    check(d.params.size() == 8 && d.momentum.size() == 8, "a loaded checkpoint has the model's size");
  } catch (const ddp::UserError& e) {
    check(std::strncmp(e.what(), "fuzz.safetensors: ", 18) == 0, "the message starts with the file name");
  }
  return 0;
}
