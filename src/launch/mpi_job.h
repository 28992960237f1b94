// A train_parallel job over MPI: the launcher, which runs this program
// through mpirun (dist/mpi_launch.h), and one rank started by mpirun or srun.
#pragma once
#include "launch/cluster_flags.h"
#include "train/config.h"

namespace ddp::launch {

// Runs this program (argv: its own command line, passed on unchanged) as
// cfg.world_size MPI ranks on this machine; returns mpirun's exit status.
int run_mpi_launcher(train::TrainConfig cfg, const ClusterFlags& f, int argc, char** argv);

// One MPI rank. world_size_given: --world-size was on the command line (it
// is ignored, with a note, when it differs from the ranks mpirun started).
int run_mpi_rank(train::TrainConfig cfg, bool world_size_given);

}  // namespace ddp::launch
