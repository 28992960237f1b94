#include "launch/cluster_flags.h"

#include "common/error.h"
#include "dist/job_secret.h"
#include "dist/rendezvous.h"
#include "train/parallel_flags.h"

namespace ddp::launch {

void add_cluster_flags(CLI::App& app, ClusterFlags& f) {
  app.add_option("--rendezvous", f.rendezvous,
                 "Where the ranks meet (gloo): redis://HOST[:PORT][/JOB] or file:///SHARED/DIR");
  app.add_option("--job-id", f.job_id, "Job id in the rendezvous store (default: the URL's /JOB, else ddp)");
  app.add_option("--secret-file", f.secret_file,
                 "File holding the job secret, the same on every node (gloo --rendezvous; or DDP_JOB_SECRET)");
  app.add_option("--redis-password-file", f.redis_password_file,
                 "File holding the Redis password (or DDP_REDIS_PASSWORD; DDP_REDIS_USER for an ACL user)");
  app.add_option("--host", f.host, "Address this node's ranks listen on (gloo; default 127.0.0.1)");
  app.add_option("--iface", f.iface, "Network interface whose IPv4 address the ranks listen on (gloo)");
  app.add_option("--cpu-bind", f.cpu_bind,
                 "gloo: core = bind each rank (and its threads) to its own core(s) among those it may use; none = "
                 "let the scheduler place them (mpirun binds MPI ranks itself)")
      ->check(CLI::IsMember({"core", "none"}))
      ->capture_default_str();
  app.add_option("--nnodes", f.nnodes, "Machines in the job (gloo; needs --rendezvous)")
      ->check(CLI::Range(1, 1024))->capture_default_str();
  app.add_option("--node-rank", f.node_rank, "This machine's number, 0 .. nnodes-1")
      ->check(CLI::Range(0, 1023))->capture_default_str();
  app.add_option("--nproc-per-node", f.nproc_per_node, "Processes on this machine (default: --world-size / --nnodes)")
      ->check(CLI::Range(1, kMaxRanksPerMachine));
  app.add_option("--min-nnodes", f.min_nnodes,
                 "With --max-restarts: a restart may continue with this many nodes when others do not come back "
                 "within --rejoin-timeout (default: all --nnodes; the world shrinks, the rest of the epoch is dealt "
                 "to the ranks left)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--rejoin-timeout", f.rejoin_timeout_s,
                 "With --max-restarts across nodes: seconds node 0 waits at a restart for every node to come back "
                 "(a node whose launcher died: start it again with the same command)")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
}

void record_given_flags(const CLI::App& app, ClusterFlags& f) {
  f.world_size_given = app.count("--world-size") > 0;
  f.backend_given = app.count("--backend") > 0;
  f.launcher_flags_given = app.count("--nnodes") + app.count("--node-rank") + app.count("--nproc-per-node") +
                               app.count("--min-nnodes") + app.count("--rejoin-timeout") >
                           0;
  f.rejoin_timeout_given = app.count("--rejoin-timeout") > 0;
}

void check_flags(const train::TrainConfig& cfg, const ClusterFlags& f) {
  if (!f.host.empty() && !f.iface.empty())
    throw UserError("--host and --iface both name the address to listen on", "give one of them");
  if (cfg.backend == dist::Backend::mpi) {
    if (!f.rendezvous.empty() || f.launcher_flags_given || !f.host.empty() || !f.iface.empty() || !f.job_id.empty())
      throw UserError("--rendezvous, --job-id, --nnodes, --node-rank, --nproc-per-node, --min-nnodes, "
                      "--rejoin-timeout, --host and --iface are for the gloo backend",
                      "with --backend mpi, mpirun places the ranks: mpirun -np N -H host1:K,host2:K train_parallel "
                      "--backend mpi ... (or srun --mpi=pmix)");
    return;
  }
  if (f.node_rank >= f.nnodes)
    throw UserError("--node-rank " + std::to_string(f.node_rank) + " is out of range for --nnodes " +
                        std::to_string(f.nnodes),
                    "number the nodes 0 .. nnodes-1");
  if (f.nnodes > 1 && f.rendezvous.empty())
    throw UserError("--nnodes " + std::to_string(f.nnodes) + " needs --rendezvous: the nodes must meet somewhere",
                    "add --rendezvous redis://HOST:PORT/JOB (a Redis server all nodes reach) or "
                    "--rendezvous file:///shared/dir (a directory all nodes mount)");
  if (f.nnodes > 1 && f.host.empty() && f.iface.empty())
    throw UserError("--nnodes " + std::to_string(f.nnodes) +
                        " needs the address the other nodes reach this one at",
                    "add --iface NAME (e.g. eth0) or --host ADDR (this node's address on the cluster network)");
  if (!f.rendezvous.empty()) {
    auto spec = dist::parse_rendezvous(f.rendezvous);
    dist::load_credentials(spec, f.secret_file, f.redis_password_file);
    if (f.nnodes > 1) dist::require_job_secret(spec);  // throws for redis:// (the warning comes at launch)
    if (!f.job_id.empty()) dist::check_job_id(f.job_id);
  } else if (!f.secret_file.empty() || !f.redis_password_file.empty()) {
    throw UserError("--secret-file and --redis-password-file are for --rendezvous",
                    "a job on one machine gets a fresh secret from its launcher: drop them, or add --rendezvous");
  }
  if (!f.host.empty()) dist::check_bindable(f.host);
  if (!f.iface.empty()) dist::interface_ipv4(f.iface);
}

int ranks_on_this_node(train::TrainConfig& cfg, const ClusterFlags& f) {
  int per_node = cfg.world_size;
  if (f.nproc_per_node > 0) {
    per_node = f.nproc_per_node;
    if (f.world_size_given && cfg.world_size != f.nnodes * per_node)
      throw UserError("--world-size " + std::to_string(cfg.world_size) + " is not --nnodes " +
                          std::to_string(f.nnodes) + " x --nproc-per-node " + std::to_string(per_node),
                      "give --nproc-per-node only (the world is nnodes x nproc-per-node)");
  } else if (cfg.world_size % f.nnodes != 0) {
    throw UserError("--world-size " + std::to_string(cfg.world_size) + " cannot be split evenly over --nnodes " +
                        std::to_string(f.nnodes),
                    "give --nproc-per-node K (the world is then nnodes x K)");
  } else {
    per_node = cfg.world_size / f.nnodes;
  }
  const std::string most = std::to_string(kMaxRanksPerMachine);
  if (per_node > kMaxRanksPerMachine)
    throw UserError("--world-size " + std::to_string(cfg.world_size) + " would start " + std::to_string(per_node) +
                        " ranks on this machine, more than " + most,
                    cfg.backend == dist::Backend::mpi
                        ? "use at most " + most + " ranks on one machine; across machines, start the job with "
                              "mpirun -np N -H host1:K,host2:K train_parallel --backend mpi ..."
                        : "use at most " + most + " ranks per machine, or spread them over machines with --nnodes");
  cfg.world_size = f.nnodes * per_node;
  if (cfg.world_size > train::kMaxWorldSize)
    throw UserError("--nnodes " + std::to_string(f.nnodes) + " x " + std::to_string(per_node) +
                        " ranks per node is a world of " + std::to_string(cfg.world_size) + ", more than " +
                        std::to_string(train::kMaxWorldSize) + " ranks",
                    "use fewer ranks");
  return per_node;
}

std::string listen_address(const ClusterFlags& f, const std::string& fallback) {
  if (!f.iface.empty()) return dist::interface_ipv4(f.iface);
  if (!f.host.empty()) return f.host;
  return fallback;
}

}  // namespace ddp::launch
