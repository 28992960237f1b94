// The safetensors writer (train/safetensors.h); the reader is in safetensors.cpp.
#include <bit>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "sys/atomic_file.h"
#include "train/safetensors.h"

namespace ddp::train {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this code copies floats as they are in memory");

using ordered_json = nlohmann::ordered_json;

std::string safetensors_header(const std::map<std::string, std::string>& metadata,
                               const std::vector<TensorRef>& tensors) {
  ordered_json h = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json m = ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const TensorRef& t : tensors) {
    DDP_ASSERT(t.name != "__metadata__" && !h.contains(t.name), "tensor name used twice: " + t.name);
    uint64_t count = 1;
    for (int64_t d : t.shape) {
      DDP_ASSERT(d >= 0, "negative dimension in " + t.name);
      count *= static_cast<uint64_t>(d);
    }
    DDP_ASSERT(count == 0 || t.data != nullptr, "no data for " + t.name);
    h[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + 4 * count}}};
    offset += 4 * count;
  }
  std::string text;
  try {
    text = h.dump();
  } catch (const nlohmann::json::exception&) {
    throw UserError("cannot write a safetensors header: a metadata value or tensor name is not valid UTF-8",
                    "use UTF-8 text in the configuration (paths included)");
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + text;
}

std::vector<uint8_t> encode_safetensors(const std::map<std::string, std::string>& metadata,
                                        const std::vector<TensorRef>& tensors) {
  const std::string header = safetensors_header(metadata, tensors);
  std::vector<uint8_t> out(header.begin(), header.end());
  for (const TensorRef& t : tensors) {
    size_t count = 1;
    for (int64_t d : t.shape) count *= static_cast<size_t>(d);
    const uint8_t* p = reinterpret_cast<const uint8_t*>(t.data);
    if (count) out.insert(out.end(), p, p + 4 * count);
  }
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, std::string>& metadata,
                       const std::vector<TensorRef>& tensors) {
  const std::string header = safetensors_header(metadata, tensors);
  std::vector<sys::Piece> pieces{{header.data(), header.size()}};
  for (const TensorRef& t : tensors) {
    size_t count = 1;
    for (int64_t d : t.shape) count *= static_cast<size_t>(d);
    if (count) pieces.push_back({t.data, 4 * count});
  }
  sys::write_file_atomic(path, pieces);
}

}  // namespace ddp::train
