// Checkpoints: one safetensors file per save, holding the model's parameters
// under PyTorch's names and shapes (so that in PyTorch
// `model.load_state_dict(safetensors.torch.load_file(p), strict=False)` works),
// the SGD momentum buffers as "optimizer.momentum.<name>", and string metadata
// (epoch, step, seed, config, data checksum, RNG state, format_version, ...).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "nn/param.h"
#include "train/safetensors.h"

namespace ddp::train {

// The version of this layout; load_checkpoint refuses a file of another.
constexpr const char* kCheckpointFormatVersion = "1";
constexpr const char* kMomentumPrefix = "optimizer.momentum.";

struct CheckpointData {
  std::map<std::string, std::string> metadata;  // epoch, step, seed, config (JSON text), data_checksum, ...
  std::vector<float> params;                    // [Cnn::num_params()], flat, PyTorch order
  std::vector<float> momentum;                  // [Cnn::num_params()], SGD velocity, same layout
};

// Writes <path> atomically (see sys::write_file_atomic: temp file, fsync,
// rename, fsync of the directory). On any failure (disk full, quota, file
// size limit, permission, ...) the temp file is removed, the previous <path>
// is left intact and a UserError names the path, the cause and a fix. The
// process ignores SIGXFSZ from the first save on, so that RLIMIT_FSIZE is an
// error here, not a kill. Adds metadata "format_version" and "format": "pt"
// (what safetensors.torch writes) unless present.
void save_checkpoint(const std::string& path, const CheckpointData& data);

// Reads and checks a checkpoint against this program's model
// (Cnn::param_specs()): every parameter and momentum tensor must be there
// with the right shape, and nothing else; any difference is a UserError that
// says what differs ("conv2.weight has shape [64,16,3,3], this program's model
// has [64,32,3,3]").
CheckpointData load_checkpoint(const std::string& path);

// The checks of load_checkpoint against any list of specs; `source` names the
// file in messages. (For tests and the fuzzer, which have no oneDNN model.)
CheckpointData checkpoint_from_contents(SafetensorsContents contents, const std::vector<nn::ParamSpec>& specs,
                                        const std::string& source);
// The tensors save_checkpoint writes, viewing `data` (which must outlive them).
std::vector<TensorRef> checkpoint_tensors(const CheckpointData& data, const std::vector<nn::ParamSpec>& specs);

// <dir>/checkpoint_epoch<epoch>.safetensors after `epoch` whole epochs, or
// <dir>/checkpoint_epoch<epoch>_step<step>.safetensors after `step` more
// steps of the next one (a run stopped by a signal).
std::string checkpoint_path(const std::string& dir, int epoch, long long step = 0);

// The path of the newest checkpoint in `dir`: the largest (epoch, step),
// compared as numbers (10 is newer than 9). UserError if there is none or
// `dir` cannot be read.
std::string newest_checkpoint(const std::string& dir);

}  // namespace ddp::train
