#include "train/sample_log.h"

#include <string>

#include "sys/env.h"

namespace ddp::train {

SampleLog::SampleLog(int rank) {
  if (const std::string path = sys::env_string("DDP_SAMPLE_LOG", ""); !path.empty())
    file_.reset(std::fopen((path + "." + std::to_string(rank)).c_str(), "a"));
}

void SampleLog::step(int epoch, int64_t global_step, std::span<const int64_t> batch) {
  if (!file_) return;
  std::fprintf(file_.get(), "%d %lld", epoch, static_cast<long long>(global_step));
  for (int64_t i : batch) std::fprintf(file_.get(), " %lld", static_cast<long long>(i));
  std::fputc('\n', file_.get());
  std::fflush(file_.get());  // a rank stopped by a signal has logged every step it trained
}

}  // namespace ddp::train
