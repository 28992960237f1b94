#include "train/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <set>
#include <system_error>

#include "common/error.h"
#include "nn/cnn.h"

namespace ddp::train {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPrefix = "checkpoint_epoch";
constexpr const char* kSuffix = ".safetensors";
constexpr const char* kOtherModelHint =
    "this file was not written by this program's model (or by another version of it): resume from a checkpoint "
    "this program wrote, or start without resuming";

std::vector<int64_t> to_shape(const std::vector<long>& s) { return std::vector<int64_t>(s.begin(), s.end()); }

size_t total_count(const std::vector<nn::ParamSpec>& specs) {
  size_t n = 0;
  for (const auto& s : specs) n = std::max(n, s.offset + s.count);
  return n;
}

}  // namespace

std::vector<TensorRef> checkpoint_tensors(const CheckpointData& data, const std::vector<nn::ParamSpec>& specs) {
  const size_t n = total_count(specs);
  DDP_ASSERT(data.params.size() == n, "checkpoint params have " + std::to_string(data.params.size()) +
                                          " floats, the model " + std::to_string(n));
  DDP_ASSERT(data.momentum.size() == n, "checkpoint momentum has " + std::to_string(data.momentum.size()) +
                                            " floats, the model " + std::to_string(n));
  std::vector<TensorRef> out;
  out.reserve(2 * specs.size());
  for (const auto& s : specs) out.push_back({s.name, to_shape(s.shape), data.params.data() + s.offset});
  for (const auto& s : specs)
    out.push_back({kMomentumPrefix + s.name, to_shape(s.shape), data.momentum.data() + s.offset});
  return out;
}

void save_checkpoint(const std::string& path, const CheckpointData& data) {
  std::map<std::string, std::string> metadata = data.metadata;
  metadata.emplace("format_version", kCheckpointFormatVersion);
  metadata.emplace("format", "pt");
  write_safetensors(path, metadata, checkpoint_tensors(data, nn::Cnn::param_specs()));
}

CheckpointData checkpoint_from_contents(SafetensorsContents contents, const std::vector<nn::ParamSpec>& specs,
                                        const std::string& source) {
  auto fail = [&](const std::string& problem) -> void { throw UserError(source + ": " + problem, kOtherModelHint); };

  auto it = contents.metadata.find("format_version");
  if (it != contents.metadata.end() && it->second != kCheckpointFormatVersion)
    throw UserError(source + ": checkpoint format version " + it->second + "; this program reads version " +
                        kCheckpointFormatVersion,
                    "resume from a checkpoint written by this version of the program, or start without resuming");

  CheckpointData out;
  const size_t n = total_count(specs);
  out.params.assign(n, 0.f);
  out.momentum.assign(n, 0.f);
  std::set<std::string> used;
  auto take = [&](const std::string& name, const nn::ParamSpec& spec, std::vector<float>& dst) {
    auto t = contents.tensors.find(name);
    if (t == contents.tensors.end()) {
      std::string have;
      size_t shown = 0;
      for (const auto& [k, v] : contents.tensors) {
        if (shown++ == 8) {
          have += ", ...";
          break;
        }
        have += (have.empty() ? "" : ", ") + k;
      }
      fail("the tensor " + name + " is missing (the file has " + std::to_string(contents.tensors.size()) +
           " tensors" + (have.empty() ? "" : ": " + have) + ")");
    }
    const std::vector<int64_t> want = to_shape(spec.shape);
    if (t->second.shape != want)
      fail(name + " has shape " + shape_to_string(t->second.shape) + ", this program's model has " +
           shape_to_string(want));
    DDP_ASSERT(t->second.data.size() == spec.count, "tensor size checked by the reader");
    std::copy(t->second.data.begin(), t->second.data.end(), dst.begin() + static_cast<ptrdiff_t>(spec.offset));
    used.insert(name);
  };
  for (const auto& s : specs) take(s.name, s, out.params);
  for (const auto& s : specs) take(kMomentumPrefix + s.name, s, out.momentum);
  for (const auto& [name, t] : contents.tensors) {
    if (used.count(name)) continue;
    const size_t more = contents.tensors.size() - used.size() - 1;
    fail("it has a tensor this program's model does not have: " + name + " " + shape_to_string(t.shape) +
         (more ? " (and " + std::to_string(more) + " more)" : ""));
  }
  out.metadata = std::move(contents.metadata);
  return out;
}

CheckpointData load_checkpoint(const std::string& path) {
  // This model's checkpoint is 3.4 MB; anything far larger is not one.
  const uint64_t max_bytes = 2 * 4 * nn::Cnn::num_params() + (uint64_t{64} << 20);
  return checkpoint_from_contents(read_safetensors(path, max_bytes), nn::Cnn::param_specs(), path);
}

std::string checkpoint_path(const std::string& dir, int epoch) {
  DDP_ASSERT(epoch >= 0, "negative epoch");
  return (fs::path(dir) / (kPrefix + std::to_string(epoch) + kSuffix)).string();
}

std::string newest_checkpoint(const std::string& dir) {
  const std::string hint = "train with checkpoints enabled first, or point at the directory that holds them";
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw UserError(dir + ": cannot list the checkpoint directory: " + ec.message(), hint);
  const std::string prefix = kPrefix, suffix = kSuffix;
  bool found = false;
  long long best = -1;
  std::string best_name;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) throw UserError(dir + ": cannot list the checkpoint directory: " + ec.message(), hint);
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const char* first = name.data() + prefix.size();
    const char* last = name.data() + name.size() - suffix.size();
    if (!std::all_of(first, last, [](char c) { return c >= '0' && c <= '9'; })) continue;
    long long k = 0;
    auto [end, err] = std::from_chars(first, last, k);
    if (err != std::errc() || end != last) continue;  // too many digits
    std::error_code fec;
    if (!it->is_regular_file(fec)) continue;
    // Ties (epoch7 and epoch07) go to the canonical spelling, then to the name.
    const std::string canonical = prefix + std::to_string(k) + suffix;
    bool better = !found || k > best ||
                  (k == best && (name == canonical ||
                                 (best_name != prefix + std::to_string(best) + suffix && name > best_name)));
    if (better) {
      found = true;
      best = k;
      best_name = name;
    }
  }
  if (!found)
    throw UserError(dir + ": no checkpoint (no file named " + prefix + "<K>" + suffix + ") in this directory", hint);
  return (fs::path(dir) / best_name).string();
}

}  // namespace ddp::train
