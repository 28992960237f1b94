#include "launch/train_parallel.h"

#include <cstdlib>
#include <string>

#include "common/error.h"
#include "dist/mpi_communicator.h"
#include "launch/gloo_job.h"
#include "launch/mpi_job.h"
#include "train/cli.h"

namespace ddp::launch {

namespace {

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v && *v;
}

std::string rank_label(const char* value) {
  return "train_parallel [rank " + std::string(value && *value ? value : "?") + "]";
}

int run_mpi_role(const train::TrainConfig& cfg, const ClusterFlags& f, int argc, char** argv) {
  if (dist::launched_by_mpi()) {
    const auto place = dist::mpi_place_from_env();
    const std::string who = rank_label(place.rank >= 0 ? std::to_string(place.rank).c_str() : nullptr);
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

  const bool child_of_launcher = env_set("DDP_RENDEZVOUS_DIR");
  const bool external_rank = !f.rendezvous.empty() && env_set("RANK") && env_set("WORLD_SIZE") &&
                             !f.launcher_flags_given;
  if (child_of_launcher || external_rank)
    return train::run_main(rank_label(std::getenv("RANK")), [&] { return run_gloo_rank(cfg, f); });
  return train::run_main("train_parallel", [&] {
    check_flags(cfg, f);
    const char* mpi_size = std::getenv("OMPI_COMM_WORLD_SIZE");
    if (mpi_size && std::atoi(mpi_size) > 1 && !f.backend_given)
      throw UserError("started by mpirun with the gloo backend: every process would launch its own job",
                      "add --backend mpi (each process is then one MPI rank)");
    return run_gloo_launcher(cfg, f, argc, argv);
  });
}

}  // namespace ddp::launch
