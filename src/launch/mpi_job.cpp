#include "launch/mpi_job.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>

#include "common/error.h"
#include "dist/comm_priority.h"
#include "dist/mpi_communicator.h"
#include "dist/mpi_launch.h"
#include "launch/restarts.h"
#include "launch/run_rank.h"
#include "sys/cores.h"
#include "sys/env.h"
#include "sys/launch_env.h"
#include "sys/machine.h"
#include "sys/process.h"
#include "train/stop.h"

namespace ddp::launch {

int run_mpi_launcher(train::TrainConfig cfg, const ClusterFlags& f, int argc, char** argv) {
  ranks_on_this_node(cfg, f);  // all of them: mpirun starts them here
  check_restartable(cfg, f);
  check_before_launch(cfg);
  const int cores = sys::online_cores();
  const bool oversubscribed = cfg.world_size * cfg.threads > cores;
  std::cout << "train_parallel: " << cfg.world_size << " processes x " << cfg.threads << " thread(s) on " << cores
            << " cores, mpi backend (through mpirun)" << std::endl;
  if (oversubscribed)
    std::cout << "train_parallel: OVERSUBSCRIBED: " << cfg.world_size * cfg.threads << " threads share " << cores
              << " cores; ranks will take turns, so expect lower throughput per rank" << std::endl;
  dist::MpirunOptions o;
  o.world_size = cfg.world_size;
  o.cores = cores;
  o.threads_per_rank = cfg.threads;
  o.job_name = "train_parallel";
  o.argv.push_back(sys::self_exe());  // a real path: mpirun may start it elsewhere
  for (int i = 1; i < argc; ++i) o.argv.push_back(argv[i]);
  if (oversubscribed && !sys::env_set("OMP_WAIT_POLICY")) o.env.push_back({"OMP_WAIT_POLICY", "passive"});
  return run_with_restarts(cfg, o.job_name, [&](const EnvList& env, const AttemptPlan&) {
    dist::MpirunOptions attempt = o;
    attempt.env.insert(attempt.env.end(), env.begin(), env.end());
    dist::LaunchOutcome out;
    dist::launch_mpirun(attempt, &out);
    return out;
  });
}

int run_mpi_rank(train::TrainConfig cfg, bool world_size_given) {
  train::install_stop_handlers();  // before MPI starts its threads
  dist::MpiOptions mo;
  mo.timeout = std::chrono::milliseconds(static_cast<long>(cfg.timeout_s * 1000));
  mo = dist::mpi_options_from_env(mo);
  apply_restart_env(cfg);
  const int world = sys::mpi_place_from_env().size;  // -1 if the launcher does not say
  mo.ring_allreduce = sys::ranks_on_this_machine(std::max(world, 1)) * cfg.threads <= sys::online_cores();
  const auto data = train::load_datasets(cfg);
  auto comm = dist::make_mpi_communicator(mo);
  if (world_size_given && cfg.world_size != comm->size() && comm->rank() == 0)
    std::cout << "train_parallel: note: --world-size " << cfg.world_size << " ignored: the MPI launcher started "
              << comm->size() << " ranks" << std::endl;
  cfg.world_size = comm->size();
  return train_and_report(cfg, data, *comm, "by mpirun: " + sys::current_binding());
}

}  // namespace ddp::launch
