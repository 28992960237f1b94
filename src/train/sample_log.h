// DDP_SAMPLE_LOG=PATH: every sample id a rank trains, one line per step
// ("epoch global_step id id ...") in PATH.<rank>. For tests that check which
// samples a run trains (a resumed epoch on another world size: each sample
// once, apart from the sampler's padding); off unless the variable is set.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>

namespace ddp::train {

class SampleLog {
 public:
  explicit SampleLog(int rank);  // opens PATH.<rank> for appending when DDP_SAMPLE_LOG is set
  explicit operator bool() const { return file_ != nullptr; }
  void step(int epoch, int64_t global_step, std::span<const int64_t> batch);

 private:
  std::unique_ptr<FILE, int (*)(FILE*)> file_{nullptr, &std::fclose};
};

}  // namespace ddp::train
