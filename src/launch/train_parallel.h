// What a train_parallel process is depends on how it was started:
//  --backend mpi   under mpirun / srun (OMPI_COMM_WORLD_SIZE, PMIX_RANK or
//                  PMI_RANK set): one MPI rank. Otherwise the launcher: it
//                  runs itself through mpirun with --world-size ranks.
//  --backend gloo  with DDP_RENDEZVOUS_DIR set (a child of our own launcher):
//                  one rank, meeting the others in that private directory, or
//                  at --rendezvous when given. With --rendezvous, RANK and
//                  WORLD_SIZE set by any launcher (torchrun style) and no
//                  --nnodes / --node-rank / --nproc-per-node: one rank of a
//                  job that meets at --rendezvous. Otherwise the launcher: it
//                  starts this node's ranks (--world-size on one machine, or
//                  --nproc-per-node of --nnodes) and supervises them.
#pragma once
#include "launch/cluster_flags.h"
#include "train/config.h"

namespace ddp::launch {

// Plays this process's role with the parsed flags (argv: the command line,
// which launchers pass on to the ranks unchanged). Returns the exit status;
// every error becomes one message (train::run_main).
int run_train_parallel(const train::TrainConfig& cfg, const ClusterFlags& f, int argc, char** argv);

}  // namespace ddp::launch
