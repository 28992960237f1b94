// train_parallel: data-parallel training (the DistributedDataParallel
// algorithm) over Gloo or MPI, on one machine or many. What a process does
// (launcher or rank) is decided in src/launch/train_parallel.h.
#include "launch/cluster_flags.h"
#include "launch/train_parallel.h"
#include "train/cli.h"
#include "train/parallel_flags.h"

using namespace ddp;

int main(int argc, char** argv) {
  train::TrainConfig cfg;
  launch::ClusterFlags f;
  CLI::App app{"Train the MNIST CNN with data parallelism (DistributedDataParallel over Gloo or MPI).",
               "train_parallel"};
  train::add_training_flags(app, cfg);
  train::add_parallel_flags(app, cfg);
  launch::add_cluster_flags(app, f);
  try {
    auto args = train::normalise_args(argc, argv);
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  launch::record_given_flags(app, f);
  return launch::run_train_parallel(cfg, f, argc, argv);
}
