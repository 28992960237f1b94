// The strict safetensors reader (the writer: safetensors_write.cpp). It parses the JSON header
// with a SAX handler that accepts exactly the safetensors schema and stops at
// the first thing that is not, so memory stays proportional to what is
// valid, whatever the file holds (no DOM of a hostile 100 MB header).
#include "train/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"

namespace ddp::train {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this code copies floats as they are in memory");
static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559, "F32 must be IEEE 754 binary32");

namespace {

using json = nlohmann::json;

constexpr const char* kCorruptHint =
    "the file is truncated, corrupt or not a safetensors file: use another checkpoint (or re-create it)";
constexpr size_t kMaxRank = 64;

[[noreturn]] void fail(const std::string& source, const std::string& problem, const std::string& hint = kCorruptHint) {
  throw UserError(source + ": " + problem, hint);
}

std::string show_name(const std::string& s) {
  // Names from the file may hold anything; show them as JSON strings, which
  // escapes control characters and stays one line.
  return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---------------------------------------------------------------- reading --

struct Entry {
  std::string name;
  std::string dtype;
  bool has_dtype = false, has_shape = false, has_offsets = false;
  std::vector<uint64_t> shape;
  std::vector<uint64_t> offsets;
};

// Accepts {"__metadata__": {str: str}, name: {"dtype": str, "shape": [uint...],
// "data_offsets": [uint, uint]}, ...} and nothing else. Each callback returns
// false (which stops the parse) after recording the first problem.
class HeaderSax {
 public:
  std::string error;
  std::map<std::string, std::string> metadata;
  std::vector<Entry> entries;

  bool null() { return bad_value("null"); }
  bool boolean(bool) { return bad_value("a boolean"); }
  bool number_integer(json::number_integer_t v) {
    return bad_value(v < 0 ? "a negative number" : "a number");
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (state_ == kShape) {
      Entry& e = entries.back();
      if (e.shape.size() >= kMaxRank) return problem(show_name(e.name) + " has more than " + std::to_string(kMaxRank) + " dimensions");
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return problem(show_name(e.name) + " has a dimension of " + std::to_string(v) + ", too large");
      e.shape.push_back(v);
      return true;
    }
    if (state_ == kOffsets) {
      Entry& e = entries.back();
      if (e.offsets.size() >= 2) return problem(show_name(e.name) + ": data_offsets must be [begin, end], it has more than 2 numbers");
      e.offsets.push_back(v);
      return true;
    }
    return bad_value("a number");
  }
  bool number_float(json::number_float_t, const json::string_t&) {
    if (state_ == kShape || state_ == kOffsets) return bad_value("a number that is not a non-negative integer (or too large)");
    return bad_value("a number");
  }
  bool string(json::string_t& v) {
    switch (state_) {
      case kMetadata:
        metadata[key_] = std::move(v);
        return true;
      case kDtype:
        entries.back().dtype = std::move(v);
        entries.back().has_dtype = true;
        state_ = kEntry;
        return true;
      default:
        return bad_value("a string");
    }
  }
  bool binary(json::binary_t&) { return bad_value("binary data"); }

  bool start_object(std::size_t) {
    switch (state_) {
      case kStart:
        state_ = kTop;
        return true;
      case kTopValue:
        if (key_ == "__metadata__") {
          state_ = kMetadata;
        } else {
          entries.emplace_back();
          entries.back().name = key_;
          state_ = kEntry;
        }
        return true;
      default:
        return bad_value("an object");
    }
  }
  bool end_object() {
    switch (state_) {
      case kTop:
        state_ = kDone;
        return true;
      case kMetadata:
        state_ = kTop;
        return true;
      case kEntry: {
        const Entry& e = entries.back();
        const char* missing = !e.has_dtype ? "dtype" : !e.has_shape ? "shape" : !e.has_offsets ? "data_offsets" : nullptr;
        if (missing) return problem("tensor " + show_name(e.name) + " has no \"" + missing + "\"");
        state_ = kTop;
        return true;
      }
      default:
        return problem("unexpected end of an object");  // not reachable with valid JSON
    }
  }
  bool start_array(std::size_t) {
    if (state_ == kShapeValue) {
      state_ = kShape;
      entries.back().has_shape = true;
      return true;
    }
    if (state_ == kOffsetsValue) {
      state_ = kOffsets;
      entries.back().has_offsets = true;
      return true;
    }
    return bad_value("an array");
  }
  bool end_array() {
    if (state_ == kShape) {
      state_ = kEntry;
      return true;
    }
    if (state_ == kOffsets) {
      const Entry& e = entries.back();
      if (e.offsets.size() != 2)
        return problem(show_name(e.name) + ": data_offsets must be [begin, end], it has " + std::to_string(e.offsets.size()) + " numbers");
      state_ = kEntry;
      return true;
    }
    return problem("unexpected end of an array");  // not reachable with valid JSON
  }
  bool key(json::string_t& k) {
    switch (state_) {
      case kTop:
        if (!top_keys_.insert(k).second) return problem("the name " + show_name(k) + " appears twice in the header");
        key_ = std::move(k);
        state_ = kTopValue;
        return true;
      case kMetadata:
        if (metadata.count(k)) return problem("__metadata__ has the key " + show_name(k) + " twice");
        key_ = std::move(k);
        return true;
      case kEntry: {
        Entry& e = entries.back();
        bool seen;
        if (k == "dtype") {
          seen = e.has_dtype;
          state_ = kDtype;
        } else if (k == "shape") {
          seen = e.has_shape;
          state_ = kShapeValue;
        } else if (k == "data_offsets") {
          seen = e.has_offsets;
          state_ = kOffsetsValue;
        } else {
          return problem("tensor " + show_name(e.name) + " has an unknown field " + show_name(k) +
                         " (expected dtype, shape, data_offsets)");
        }
        if (seen) return problem("tensor " + show_name(e.name) + " has the field " + show_name(k) + " twice");
        return true;
      }
      default:
        return problem("unexpected key");  // not reachable with valid JSON
    }
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) {
    if (error.empty()) {
      std::string what = ex.what();
      // nlohmann's messages start with "[json.exception.parse_error.101] parse error at ...".
      auto p = what.find("] ");
      if (p != std::string::npos) what = what.substr(p + 2);
      error = "the header is not valid JSON (at byte " + std::to_string(position) + " of the header): " + what;
    }
    return false;
  }

 private:
  enum State { kStart, kTop, kTopValue, kMetadata, kEntry, kDtype, kShapeValue, kShape, kOffsetsValue, kOffsets, kDone };

  bool problem(std::string what) {
    if (error.empty()) error = std::move(what);
    return false;
  }
  bool bad_value(const std::string& what) {
    switch (state_) {
      case kStart:
        return problem("the header is " + what + ", not a JSON object");
      case kTopValue:
        if (key_ == "__metadata__") return problem("__metadata__ is " + what + ", not an object of strings");
        return problem("the entry for " + show_name(key_) + " is " + what + ", not an object");
      case kMetadata:
        return problem("__metadata__ value of " + show_name(key_) + " is " + what + ", not a string");
      case kDtype:
        return problem("tensor " + show_name(entries.back().name) + ": dtype is " + what + ", not a string");
      case kShapeValue:
        return problem("tensor " + show_name(entries.back().name) + ": shape is " + what + ", not an array");
      case kShape:
        return problem("tensor " + show_name(entries.back().name) + ": shape holds " + what +
                       ", not a non-negative integer");
      case kOffsetsValue:
        return problem("tensor " + show_name(entries.back().name) + ": data_offsets is " + what + ", not an array");
      case kOffsets:
        return problem("tensor " + show_name(entries.back().name) + ": data_offsets holds " + what +
                       ", not a non-negative integer");
      default:
        return problem("unexpected " + what + " in the header");
    }
  }

  State state_ = kStart;
  std::string key_;
  std::set<std::string> top_keys_;
};

}  // namespace

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

SafetensorsContents parse_safetensors(const uint8_t* bytes, size_t size, const std::string& source) {
  if (size < 8)
    fail(source, "the file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > kMaxSafetensorsHeaderBytes)
    fail(source, "the header length is " + std::to_string(n) + " bytes, more than the " +
                     std::to_string(kMaxSafetensorsHeaderBytes) + "-byte limit");
  if (n > size - 8)
    fail(source, "the header length is " + std::to_string(n) + " bytes, past the end of the " +
                     std::to_string(size) + "-byte file");

  const char* header = reinterpret_cast<const char*>(bytes + 8);
  HeaderSax sax;
  bool ok = json::sax_parse(header, header + n, &sax, nlohmann::detail::input_format_t::json, true);
  if (!ok || !sax.error.empty())
    fail(source, sax.error.empty() ? std::string("the header is not valid JSON") : sax.error);

  const uint64_t data_size = size - 8 - n;
  // Each tensor on its own, then together: sorted by offset they must tile
  // the data section exactly (no overlap, no gap, nothing after the end).
  for (const Entry& e : sax.entries) {
    if (e.dtype != "F32")
      fail(source, "tensor " + show_name(e.name) + " has dtype " + show_name(e.dtype) + "; only F32 is supported",
           "this program reads float32 checkpoints only (as it writes them)");
    const uint64_t begin = e.offsets[0], end = e.offsets[1];
    if (begin > end)
      fail(source, "tensor " + show_name(e.name) + " has data_offsets [" + std::to_string(begin) + ", " +
                       std::to_string(end) + "]: begin is after end");
    if (end > data_size)
      fail(source, "tensor " + show_name(e.name) + " has data_offsets [" + std::to_string(begin) + ", " +
                       std::to_string(end) + "], past the end of the " + std::to_string(data_size) +
                       "-byte data section (the file is truncated?)");
    // The element count, unless it overflows 64 bits (a 0 anywhere makes it 0).
    uint64_t count = 1;
    bool overflow = false;
    for (uint64_t d : e.shape) overflow |= __builtin_mul_overflow(count, d, &count);
    if (std::find(e.shape.begin(), e.shape.end(), uint64_t{0}) != e.shape.end()) {
      overflow = false;
      count = 0;
    }
    uint64_t bytes_needed = 0;
    overflow |= __builtin_mul_overflow(count, uint64_t{4}, &bytes_needed);
    if (overflow || bytes_needed != end - begin) {
      std::vector<int64_t> shape(e.shape.begin(), e.shape.end());
      fail(source, "tensor " + show_name(e.name) + " has shape " + shape_to_string(shape) + " (" +
                       (overflow ? std::string("too many elements") : std::to_string(count) + " floats, " +
                                                                          std::to_string(bytes_needed) + " bytes") +
                       ") but its data_offsets span " + std::to_string(end - begin) + " bytes");
    }
  }
  std::vector<const Entry*> order;
  order.reserve(sax.entries.size());
  for (const Entry& e : sax.entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) { return a->offsets < b->offsets; });
  uint64_t covered = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : order) {
    const uint64_t begin = e->offsets[0];
    if (begin < covered)
      fail(source, "the data of tensors " + show_name(prev->name) + " and " + show_name(e->name) + " overlap (bytes " +
                       std::to_string(begin) + ".." + std::to_string(covered) + ")");
    if (begin > covered)
      fail(source, "bytes " + std::to_string(covered) + ".." + std::to_string(begin) +
                       " of the data section belong to no tensor");
    covered = e->offsets[1];
    prev = e;
  }
  if (covered != data_size)
    fail(source, "the tensors cover " + std::to_string(covered) + " bytes but the data section is " +
                     std::to_string(data_size) + " bytes: unexpected trailing bytes");

  SafetensorsContents out;
  out.metadata = std::move(sax.metadata);
  const uint8_t* data = bytes + 8 + n;
  for (const Entry& e : sax.entries) {
    Tensor t;
    t.shape.assign(e.shape.begin(), e.shape.end());
    t.data.resize((e.offsets[1] - e.offsets[0]) / 4);
    if (!t.data.empty()) std::memcpy(t.data.data(), data + e.offsets[0], t.data.size() * 4);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

SafetensorsContents read_safetensors(const std::string& path, uint64_t max_file_bytes) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) {
    int err = errno;
    if (err == ENOENT) fail(path, "no such file", "check the path");
    if (err == EACCES) fail(path, "permission denied", "make it readable (chmod a+r)");
    fail(path, std::string("cannot open: ") + std::strerror(err), "check the path");
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) fail(path, std::string("cannot stat: ") + std::strerror(errno), "check the path");
  if (S_ISDIR(st.st_mode)) fail(path, "is a directory, not a file", "point it at the .safetensors file itself");
  if (!S_ISREG(st.st_mode)) fail(path, "is not a regular file", "point it at the .safetensors file itself");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max_file_bytes)
    fail(path, "is " + std::to_string(size) + " bytes, more than the " + std::to_string(max_file_bytes) +
                   " bytes expected of this file");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t r = ::read(f.fd, bytes.data() + got, std::min<size_t>(bytes.size() - got, size_t{1} << 30));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(path, std::string("read error: ") + std::strerror(errno), "check the disk");
    if (r == 0) fail(path, "the file shrank while being read", "make sure nothing else is writing it");
    got += static_cast<size_t>(r);
  }
  return parse_safetensors(bytes.data(), bytes.size(), path);
}

}  // namespace ddp::train
