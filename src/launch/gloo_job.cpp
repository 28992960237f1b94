#include "launch/gloo_job.h"

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "common/error.h"
#include "dist/comm_priority.h"
#include "dist/gloo_communicator.h"
#include "dist/launcher.h"
#include "dist/job_secret.h"
#include "dist/rendezvous.h"
#include "launch/restarts.h"
#include "launch/run_rank.h"
#include "sys/cores.h"
#include "sys/env.h"
#include "sys/launch_env.h"
#include "sys/machine.h"
#include "train/stop.h"

namespace ddp::launch {

namespace {

void print_plan(const train::TrainConfig& cfg, const ClusterFlags& f, int per_node, int cores) {
  if (f.nnodes == 1)
    std::cout << "train_parallel: " << per_node << " processes x " << cfg.threads << " thread(s) on " << cores
              << " cores, gloo backend" << (f.rendezvous.empty() ? "" : ", rendezvous " + f.rendezvous) << std::endl;
  else
    std::cout << "train_parallel: node " << f.node_rank << " of " << f.nnodes << ": ranks " << f.node_rank * per_node
              << ".." << (f.node_rank + 1) * per_node - 1 << " of " << cfg.world_size << ", " << cfg.threads
              << " thread(s) each on " << cores << " cores, gloo backend, rendezvous " << f.rendezvous
              << ", listening on " << listen_address(f, "?") << std::endl;
  if (per_node * cfg.threads > cores)
    std::cout << "train_parallel: OVERSUBSCRIBED: " << per_node * cfg.threads << " threads share " << cores
              << " cores; ranks will take turns, so expect lower throughput per rank" << std::endl;
}

std::chrono::milliseconds timeout_of(const train::TrainConfig& cfg) {
  return std::chrono::milliseconds(static_cast<long>(cfg.timeout_s * 1000));
}

// The job's rendezvous: --rendezvous with --job-id and the credentials.
dist::RendezvousSpec rendezvous_spec(const ClusterFlags& f) {
  auto spec = dist::parse_rendezvous(f.rendezvous);
  if (!f.job_id.empty()) {
    dist::check_job_id(f.job_id);
    spec.job = f.job_id;
  }
  dist::load_credentials(spec, f.secret_file, f.redis_password_file);
  return spec;
}

// A child of our own launcher, meeting the others in its private directory.
int run_child_rank(train::TrainConfig cfg, const ClusterFlags& f, const std::string& binding) {
  auto gloo = dist::gloo_options_from_env();
  cfg.world_size = gloo.size;
  apply_restart_env(cfg);
  gloo.timeout = timeout_of(cfg);
  gloo.timeout_setting = "--timeout";
  gloo.algorithm = to_string(cfg.allreduce_algorithm);
  gloo.host = listen_address(f, gloo.host);
  const auto data = train::load_datasets(cfg);
  auto comm = dist::make_gloo_communicator(gloo);
  return train_and_report(cfg, data, *comm, binding);
}

// A rank of a job that meets at --rendezvous (on one machine or many).
int run_rendezvous_rank(train::TrainConfig cfg, const ClusterFlags& f, const std::string& binding) {
  const auto place = sys::place_from_env();
  if (place.rank < 0 || place.world_size < 0)
    throw UserError("--rendezvous needs RANK and WORLD_SIZE in the environment of every rank",
                    "start the ranks with a launcher that sets them (torchrun style), or let train_parallel start "
                    "them: --nnodes M --node-rank I --nproc-per-node K");
  const auto spec = rendezvous_spec(f);
  if (const auto warning = dist::require_job_secret(spec); !warning.empty() && place.rank == 0 &&
                                                                  !sys::env_set(sys::kRendezvousDirVar))
    std::cout << "train_parallel: " << warning << std::endl;
  const bool spans_machines = place.local_world_size > 0 && place.local_world_size < place.world_size;
  if (spans_machines && f.host.empty() && f.iface.empty())
    throw UserError("this job spans machines (WORLD_SIZE=" + std::to_string(place.world_size) +
                        ", LOCAL_WORLD_SIZE=" + std::to_string(place.local_world_size) +
                        ") but no address to listen on was given",
                    "add --iface NAME or --host ADDR: this machine's address on the network the ranks share");
  dist::GlooOptions base;
  base.rank = place.rank;
  base.size = place.world_size;
  base.timeout = timeout_of(cfg);
  base.timeout_setting = "--timeout";
  base.algorithm = to_string(cfg.allreduce_algorithm);
  base.host = listen_address(f, "127.0.0.1");
  dist::check_bindable(base.host);
  cfg.world_size = base.size;
  apply_restart_env(cfg);
  const auto data = train::load_datasets(cfg);
  std::string generation;
  const auto gloo = dist::join_rendezvous(spec, base, generation);
  auto comm = dist::make_gloo_communicator(gloo);
  comm->barrier();  // every rank has read what it needs from the store
  if (comm->rank() == 0) dist::clear_generation(spec, generation, comm->size());
  return train_and_report(cfg, data, *comm, binding);
}

}  // namespace

int run_gloo_launcher(train::TrainConfig cfg, const ClusterFlags& f, int argc, char** argv) {
  const int per_node = ranks_on_this_node(cfg, f);
  check_restartable(cfg, f);
  check_before_launch(cfg, f.node_rank == 0);
  const int cores = sys::online_cores();
  print_plan(cfg, f, per_node, cores);

  dist::LaunchOptions opts;
  opts.world_size = per_node;
  opts.rank_offset = f.node_rank * per_node;
  opts.global_world_size = cfg.world_size;
  opts.argv.push_back("/proc/self/exe");
  for (int i = 1; i < argc; ++i) opts.argv.push_back(argv[i]);
  opts.job_name = "train_parallel";
  if (!f.rendezvous.empty()) {  // ranks of other launchers must hold the same secret as these
    auto spec = dist::parse_rendezvous(f.rendezvous);
    dist::load_credentials(spec, f.secret_file, f.redis_password_file);
    if (f.nnodes > 1 || !spec.secret.empty()) opts.job_secret = spec.secret;
    if (const auto warning = f.nnodes > 1 ? dist::require_job_secret(spec) : ""; !warning.empty())
      std::cout << "train_parallel: " << warning << std::endl;
  }
  // Idle OpenMP threads must sleep, not spin, when ranks share cores.
  if (per_node * cfg.threads > cores && !sys::env_set("OMP_WAIT_POLICY"))
    opts.env.push_back({"OMP_WAIT_POLICY", "passive"});
  opts.kill_on_failure = cfg.max_restarts > 0;
  std::unique_ptr<NodeRounds> rounds;
  NodePart part;
  if (f.nnodes > 1 && cfg.max_restarts > 0) {  // the node launchers agree on every attempt
    rounds = std::make_unique<NodeRounds>(rendezvous_spec(f), f.node_rank, f.nnodes,
                                          "--nnodes " + std::to_string(f.nnodes) + ", --nproc-per-node " +
                                              std::to_string(per_node) + ", --max-restarts " +
                                              std::to_string(cfg.max_restarts));
    part = {rounds.get(), f.node_rank, f.nnodes, per_node, f.min_nnodes > 0 ? f.min_nnodes : f.nnodes,
            f.rejoin_timeout_s};
  }
  return run_with_restarts(
      cfg, opts.job_name,
      [&](const EnvList& env, const AttemptPlan& plan) {
        dist::LaunchOptions o = opts;
        o.env.insert(o.env.end(), env.begin(), env.end());
        if (plan.world_size > 0) {
          o.rank_offset = plan.rank_offset;
          o.global_world_size = plan.world_size;
        }
        // A stopped rank on another node fails only its peers there: learn it from the rounds.
        if (rounds) o.abandon = [&rounds] { return rounds->abandon_reason(); };
        dist::LaunchOutcome out;
        dist::launch_local(o, &out);
        return out;
      },
      rounds ? &part : nullptr);
}

int run_gloo_rank(train::TrainConfig cfg, const ClusterFlags& f) {
  train::install_stop_handlers();  // before Gloo starts its threads
  const auto where = sys::place_from_env();
  std::string sharing;  // set when every core it may use is claimed by other jobs (sys/cores.h)
  const std::string binding = f.cpu_bind == "none" ? "none: --cpu-bind none"
                              : sys::bind_to_cores(where.local_rank, where.local_world_size, cfg.threads, &sharing);
  if (!sharing.empty()) std::cout << "train_parallel: " << sharing << std::endl;
  if (f.rendezvous.empty()) return run_child_rank(cfg, f, binding);
  return run_rendezvous_rank(cfg, f, binding);
}

}  // namespace ddp::launch
