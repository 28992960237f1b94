// train_parallel: data-parallel training (the DistributedDataParallel
// algorithm) over Gloo. Started by a user it is the launcher: it starts
// --world-size copies of itself as workers (like torchrun) and supervises
// them. Started by a launcher (DDP_RENDEZVOUS_DIR in its environment) it is
// one rank.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "dist/gloo_communicator.h"
#include "dist/launcher.h"
#include "report/atomic_file.h"
#include "report/machine.h"
#include "train/cli.h"
#include "train/stop.h"
#include "train/summary.h"
#include "train/trainer.h"

using namespace ddp;

namespace {

bool is_worker() {
  const char* dir = std::getenv("DDP_RENDEZVOUS_DIR");
  return dir && *dir;
}

int run_launcher(const train::TrainConfig& cfg, int argc, char** argv) {
  train::validate(cfg);
  if (!cfg.save_results.empty()) report::check_writable(cfg.save_results);
  // A missing or corrupt file, or a checkpoint that does not fit, is reported
  // once, here, not by every rank.
  const auto data = train::load_datasets(cfg);
  if (!cfg.resume.empty()) train::check_resumable(cfg, cfg.world_size, data.train);

  const int cores = report::online_cores();
  const bool oversubscribed = cfg.world_size * cfg.threads > cores;
  std::cout << "train_parallel: " << cfg.world_size << " processes x " << cfg.threads << " thread(s) on " << cores
            << " cores, gloo backend" << std::endl;
  if (oversubscribed)
    std::cout << "train_parallel: OVERSUBSCRIBED: " << cfg.world_size * cfg.threads << " threads share " << cores
              << " cores; ranks will take turns, so expect lower throughput per rank" << std::endl;

  dist::LaunchOptions opts;
  opts.world_size = cfg.world_size;
  opts.argv.push_back("/proc/self/exe");
  for (int i = 1; i < argc; ++i) opts.argv.push_back(argv[i]);
  opts.job_name = "train_parallel";
  // Idle OpenMP threads must sleep, not spin, when ranks share cores.
  if (oversubscribed && !std::getenv("OMP_WAIT_POLICY")) opts.env.push_back({"OMP_WAIT_POLICY", "passive"});
  return dist::launch_local(opts);
}

int run_worker(train::TrainConfig cfg) {
  auto gloo = dist::gloo_options_from_env();
  cfg.world_size = gloo.size;
  gloo.timeout = std::chrono::milliseconds(static_cast<long>(cfg.timeout_s * 1000));
  gloo.algorithm = cfg.allreduce_algorithm;
  const auto data = train::load_datasets(cfg);
  auto comm = dist::make_gloo_communicator(gloo);
  train::RunResult result;
  try {
    result = train::train(cfg, *comm, data.train, data.test);
  } catch (const train::Stopped& s) {
    if (comm->rank() == 0) throw;  // rank 0 speaks for the job
    return 128 + s.signal;
  }
  if (comm->rank() == 0) {
    train::print_summary(std::cout, result);
    if (!cfg.save_results.empty()) {
      report::write_file_atomic(cfg.save_results, train::to_json(result, "train_parallel").dump(2) + "\n");
      std::cout << "results written to " << cfg.save_results << "\n";
    }
  }
  comm->barrier();  // no rank leaves while another may still need it
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  train::TrainConfig cfg;
  cfg.world_size = 2;
  CLI::App app{"Train the MNIST CNN with data parallelism (DistributedDataParallel over Gloo).", "train_parallel"};
  train::add_training_flags(app, cfg);
  app.add_option("-w,--world-size", cfg.world_size, "Number of processes")->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--lr-scaling", cfg.lr_scaling, "Learning-rate scaling rule: none, or linear (lr x world size)")
      ->check(CLI::IsMember({"none", "linear"}))->capture_default_str();
  app.add_option("--warmup-epochs", cfg.warmup_epochs, "Epochs over which the scaled learning rate is ramped up")
      ->check(CLI::Range(0, 100000))->capture_default_str();
  app.add_option("--timeout", cfg.timeout_s, "Seconds after which a silent peer counts as dead")
      ->check(train::finite_in(1, 86400))->capture_default_str();
  app.add_option("--bucket-kb", cfg.bucket_kb, "Gradient all-reduce bucket size in KiB")
      ->check(CLI::Range(size_t{4}, size_t{1} << 20))->capture_default_str();
  app.add_option("--allreduce-algorithm", cfg.allreduce_algorithm, "Gloo all-reduce algorithm")
      ->check(CLI::IsMember({"ring", "bcube"}))->capture_default_str();
  try {
    auto args = train::normalise_args(argc, argv);
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!is_worker()) return train::run_main("train_parallel", [&] { return run_launcher(cfg, argc, argv); });
  const std::string who = "train_parallel [rank " + std::string(std::getenv("RANK") ? std::getenv("RANK") : "?") + "]";
  return train::run_main(who, [&] { return run_worker(cfg); });
}
