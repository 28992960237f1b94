#include "launch/run_rank.h"

#include <iostream>
#include <optional>
#include <vector>

#include "common/error.h"
#include "launch/restarts.h"
#include "sys/atomic_file.h"
#include "train/cli.h"
#include "train/epoch_stats.h"
#include "train/stop.h"
#include "train/summary.h"
#include "train/trace_window.h"

namespace ddp::launch {

std::string rank_label(const std::string& rank) { return "train_parallel [rank " + (rank.empty() ? "?" : rank) + "]"; }

void check_before_launch(const train::TrainConfig& cfg, bool reads_checkpoint) {
  train::validate(cfg);
  train::check_output_paths(cfg);
  // A missing or corrupt file, or a checkpoint that does not fit, or a
  // --trace-steps outside the run, is reported once, here, not by every rank.
  const auto data = train::load_datasets(cfg);
  if (!cfg.resume.empty() && reads_checkpoint) train::check_resumable(cfg, data.train);
  if (!cfg.trace.empty())
    train::trace_window(cfg, 0, cfg.epochs * train::steps_per_epoch(data.train.size, cfg.world_size, cfg.batch_size));
}

void check_before_training(const train::TrainConfig& cfg, const train::Datasets& data, dist::Communicator& comm) {
  std::optional<UserError> mine;
  try {
    train::validate(cfg);
    // Rank 0 alone writes the results and reads the checkpoint (the other
    // ranks may be on machines without that path).
    if (comm.rank() == 0 && !cfg.save_results.empty()) sys::check_writable(cfg.save_results);
    if (comm.rank() == 0 && train::continues_a_run(cfg)) train::check_resumable(cfg, data.train);
  } catch (const UserError& e) {
    mine = e;
  }
  const double failed = mine ? 1 : 0;
  const std::vector<double> all = train::gather_rows(comm, &failed, 1);  // a collective: every rank learns
  if (mine) throw *mine;
  for (int r = 0; r < comm.size(); ++r)
    if (all[static_cast<size_t>(r)] != 0)
      throw UserError("rank " + std::to_string(r) + " refused to start the run (its message says why)",
                      "fix what rank " + std::to_string(r) + " reports; no step was trained");
}

int train_and_report(const train::TrainConfig& cfg, const train::Datasets& data, dist::Communicator& comm,
                     const std::string& binding) {
  train::RunResult result;
  try {
    check_before_training(cfg, data, comm);
    result = train::train(cfg, comm, data.train, data.test);
    result.binding = binding;
  } catch (const train::Stopped& s) {
    mark_no_restart("stopped by a signal");  // on purpose: not a failure
    if (comm.rank() == 0) throw;  // rank 0 speaks for the job
    return 128 + s.signal;
  } catch (const PeerError&) {
    throw;  // a peer died or hung: a restart can cure it
  } catch (const UserError& e) {
    mark_no_restart(e.what());  // it would happen again (a diverged loss, a refused checkpoint, ...)
    throw;
  }
  if (comm.rank() == 0) {
    train::print_summary(std::cout, result);
    if (!cfg.save_results.empty()) {
      sys::write_file_atomic(cfg.save_results, train::to_json(result, "train_parallel").dump(2) + "\n");
      std::cout << "results written to " << cfg.save_results << "\n";
    }
  }
  // No rank leaves while another may still need it. Rank 0 has written
  // the results by now: a peer that does not come (stopped or dead after
  // the last collective) costs --timeout here, but not the finished job;
  // the launcher then ends a stopped peer (dist/launcher.h).
  try {
    comm.barrier();
  } catch (const PeerError& e) {
    if (comm.rank() != 0) throw;
    std::cerr << rank_label("0") << ": warning: the run is complete and its results written, but a peer did not "
                 "reach the end: "
              << e.what() << "\n";
  }
  return 0;
}

}  // namespace ddp::launch
