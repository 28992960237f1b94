// A train_parallel job over Gloo: the launcher, which starts this machine's
// ranks (dist/launcher.h) and supervises them, and one rank, which meets the
// others (in its launcher's private directory, or at --rendezvous) and trains.
#pragma once
#include "launch/cluster_flags.h"
#include "train/config.h"

namespace ddp::launch {

// Starts this node's share of the world as copies of this program (argv:
// its own command line, passed on unchanged) and returns the job's exit
// status. Throws UserError for a world that does not fit the flags, or a
// run that cannot start (check_before_launch).
int run_gloo_launcher(train::TrainConfig cfg, const ClusterFlags& f, int argc, char** argv);

// One rank: a child of run_gloo_launcher (DDP_RENDEZVOUS_DIR set), or a rank
// of a job that meets at --rendezvous with RANK and WORLD_SIZE set by any
// launcher. Returns the exit status.
int run_gloo_rank(train::TrainConfig cfg, const ClusterFlags& f);

}  // namespace ddp::launch
