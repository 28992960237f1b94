#include "launch/train_parallel.h"

#include <string>

#include "common/error.h"
#include "dist/mpi_communicator.h"
#include "launch/gloo_job.h"
#include "launch/mpi_job.h"
#include "launch/run_rank.h"
#include "sys/env.h"
#include "sys/launch_env.h"
#include "train/cli.h"

namespace ddp::launch {

namespace {

int run_mpi_role(const train::TrainConfig& cfg, const ClusterFlags& f, int argc, char** argv) {
  if (sys::launched_by_mpi()) {
    const auto place = sys::mpi_place_from_env();
    const std::string who = rank_label(place.rank >= 0 ? std::to_string(place.rank) : "");
    return train::run_main(who, [&] {
      check_flags(cfg, f);
      return run_mpi_rank(cfg, f.world_size_given);
    });
  }
  return train::run_main("train_parallel", [&] {
    check_flags(cfg, f);
    return run_mpi_launcher(cfg, f, argc, argv);
  });
}

}  // namespace

int run_train_parallel(const train::TrainConfig& cfg, const ClusterFlags& f, int argc, char** argv) {
  if (cfg.backend == dist::Backend::mpi) return run_mpi_role(cfg, f, argc, argv);

  const bool child_of_launcher = sys::env_set(sys::kRendezvousDirVar);
  const bool external_rank = !f.rendezvous.empty() && sys::launched_by_launcher() && !f.launcher_flags_given;
  if (child_of_launcher || external_rank)
    return train::run_main(rank_label(sys::rank_as_given()), [&] {
      check_flags(cfg, f);  // a rank of another launcher was checked by no one
      return run_gloo_rank(cfg, f);
    });
  return train::run_main("train_parallel", [&] {
    check_flags(cfg, f);
    if (sys::mpi_place_from_env().openmpi_size > 1 && !f.backend_given)
      throw UserError("started by mpirun with the gloo backend: every process would launch its own job",
                      "add --backend mpi (each process is then one MPI rank)");
    return run_gloo_launcher(cfg, f, argc, argv);
  });
}

}  // namespace ddp::launch
