// The safetensors format (Hugging Face; what PyTorch users open with
// safetensors.torch.load_file), F32 tensors only:
//
//   8 bytes   N, the header's length, unsigned little-endian
//   N bytes   JSON: {"__metadata__": {str: str}, "<name>": {"dtype": "F32",
//             "shape": [..], "data_offsets": [begin, end]}, ...}, padded with
//             spaces to a multiple of 8
//   the rest  the tensors' raw little-endian bytes; data_offsets are relative
//             to the first byte after the header
//
// The reader is strict and never trusts a number from the file before
// checking it against the file's real size: every problem is a
// ddp::UserError("<file>: <problem>", hint). It depends on nothing but
// nlohmann-json and common/error (no oneDNN), so it can be fuzzed on its own.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ddp::train {

// A tensor to write: a view of count(shape) floats.
struct TensorRef {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
};

// A tensor read back.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;  // [product(shape)]
};

struct SafetensorsContents {
  std::map<std::string, std::string> metadata;  // "__metadata__"
  std::map<std::string, Tensor> tensors;         // by name
};

// The header may not be larger than this (the limit the reference
// implementation uses), whatever the file says.
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// The 8-byte length and the padded JSON header for these tensors, laid out one
// after the other in the given order.
std::string safetensors_header(const std::map<std::string, std::string>& metadata,
                               const std::vector<TensorRef>& tensors);

// The whole file in memory (header + data).
std::vector<uint8_t> encode_safetensors(const std::map<std::string, std::string>& metadata,
                                        const std::vector<TensorRef>& tensors);

// Writes the file atomically (sys::write_file_atomic): `path` is either
// the old file or the complete new one, never anything in between.
void write_safetensors(const std::string& path, const std::map<std::string, std::string>& metadata,
                       const std::vector<TensorRef>& tensors);

// Parses a whole file held in memory; `source` names it in error messages.
SafetensorsContents parse_safetensors(const uint8_t* bytes, size_t size, const std::string& source);

// Reads and parses a file, refusing one larger than max_file_bytes.
SafetensorsContents read_safetensors(const std::string& path, uint64_t max_file_bytes = uint64_t{1} << 32);

// "[64,32,3,3]"
std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace ddp::train
