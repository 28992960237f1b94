#include "launch/run_rank.h"

#include <iostream>

#include "sys/atomic_file.h"
#include "train/cli.h"
#include "train/stop.h"
#include "train/summary.h"
#include "train/trace_window.h"

namespace ddp::launch {

void check_before_launch(const train::TrainConfig& cfg) {
  train::validate(cfg);
  train::check_output_paths(cfg);
  // A missing or corrupt file, or a checkpoint that does not fit, or a
  // --trace-steps outside the run, is reported once, here, not by every rank.
  const auto data = train::load_datasets(cfg);
  if (!cfg.resume.empty()) train::check_resumable(cfg, cfg.world_size, data.train);
  if (!cfg.trace.empty())
    train::trace_window(cfg, 0, cfg.epochs * train::steps_per_epoch(data.train.size, cfg.world_size, cfg.batch_size));
}

int train_and_report(const train::TrainConfig& cfg, const train::Datasets& data, dist::Communicator& comm,
                     const std::string& binding) {
  train::RunResult result;
  try {
    result = train::train(cfg, comm, data.train, data.test);
    result.binding = binding;
  } catch (const train::Stopped& s) {
    if (comm.rank() == 0) throw;  // rank 0 speaks for the job
    return 128 + s.signal;
  }
  if (comm.rank() == 0) {
    train::print_summary(std::cout, result);
    if (!cfg.save_results.empty()) {
      sys::write_file_atomic(cfg.save_results, train::to_json(result, "train_parallel").dump(2) + "\n");
      std::cout << "results written to " << cfg.save_results << "\n";
    }
  }
  comm.barrier();  // no rank leaves while another may still need it
  return 0;
}

}  // namespace ddp::launch
