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

std::string checkpoint_path(const std::string& dir, int epoch, long long step) {
  DDP_ASSERT(epoch >= 0 && step >= 0, "negative epoch or step");
  const std::string at = std::to_string(epoch) + (step > 0 ? "_step" + std::to_string(step) : "");
  return (fs::path(dir) / (kPrefix + at + kSuffix)).string();
}

namespace {

// Parses "<digits>" or "<digits>_step<digits>" exactly.
bool parse_position(const char* first, const char* last, long long& epoch, long long& step) {
  auto number = [](const char* a, const char* b, long long& out) {
    if (a == b || !std::all_of(a, b, [](char c) { return c >= '0' && c <= '9'; })) return false;
    auto [end, err] = std::from_chars(a, b, out);
    return err == std::errc() && end == b;
  };
  const std::string_view text(first, static_cast<size_t>(last - first));
  const auto mark = text.find("_step");
  step = 0;
  if (mark == std::string_view::npos) return number(first, last, epoch);
  return number(first, first + mark, epoch) && number(first + mark + 5, last, step) && step > 0;
}

}  // namespace

std::string newest_checkpoint(const std::string& dir) {
  const std::string hint = "train with --checkpoint-dir first, or point at the directory that holds the checkpoints";
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw UserError(dir + ": cannot list the checkpoint directory: " + ec.message(), hint);
  const std::string prefix = kPrefix, suffix = kSuffix;
  bool found = false;
  std::pair<long long, long long> best{-1, -1};
  std::string best_name;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) throw UserError(dir + ": cannot list the checkpoint directory: " + ec.message(), hint);
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    long long epoch = 0, step = 0;
    if (!parse_position(name.data() + prefix.size(), name.data() + name.size() - suffix.size(), epoch, step)) continue;
    std::error_code fec;
    if (!it->is_regular_file(fec)) continue;
    const std::pair<long long, long long> at{epoch, step};
    // Ties (epoch7 and epoch07) go to the canonical spelling, then to the name.
    const std::string canonical = fs::path(checkpoint_path("", static_cast<int>(epoch), step)).filename().string();
    const bool better = !found || at > best || (at == best && (name == canonical || (best_name != canonical && name > best_name)));
    if (better) {
      found = true;
      best = at;
      best_name = name;
    }
  }
  if (!found)
    throw UserError(dir + ": no checkpoint (no file named " + prefix + "<K>" + suffix + ") in this directory", hint);
  return (fs::path(dir) / best_name).string();
}

}  // namespace ddp::train
