// train_parallel's flags beyond the trainer's: where the ranks meet and
// listen, and how a job spans machines (Gloo); and the checks that tie them
// to each other and to the backend.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "train/config.h"

namespace ddp::launch {

// The most ranks train_parallel starts on one machine (--world-size on one
// machine, --nproc-per-node): each rank holds its own copy of the data set
// and the model, and past one rank per core the ranks only take turns.
// Worlds beyond it span machines (--nnodes; train::kMaxWorldSize bounds the whole).
constexpr int kMaxRanksPerMachine = 64;

struct ClusterFlags {
  std::string rendezvous;  // redis://HOST[:PORT][/JOB] or file:///DIR
  std::string job_id;      // overrides the URL's
  std::string host;        // address this rank's Gloo transport listens on
  std::string iface;       // ... or the IPv4 address of this interface
  std::string secret_file, redis_password_file;  // secrets: files, never argv (dist/job_secret.h)
  int nnodes = 1, node_rank = 0, nproc_per_node = 0;
  // Restarts across machines (docs/restarts.md): the fewest nodes a restart
  // may continue with (0: all of them), and how long node 0 waits for them.
  int min_nnodes = 0;
  double rejoin_timeout_s = 60;
  std::string cpu_bind = "core";  // core | none (gloo: each rank on its own core(s))
  // Which flags the command line gave (set by record_given_flags).
  bool world_size_given = false, launcher_flags_given = false, backend_given = false, rejoin_timeout_given = false;
};

// Adds --rendezvous, --job-id, --host, --iface, --cpu-bind, --nnodes,
// --node-rank, --nproc-per-node, --min-nnodes and --rejoin-timeout.
void add_cluster_flags(CLI::App& app, ClusterFlags& f);

// After parsing: which of --world-size, --backend and the launcher flags
// (--nnodes, --node-rank, --nproc-per-node, --min-nnodes, --rejoin-timeout)
// were given.
void record_given_flags(const CLI::App& app, ClusterFlags& f);

// Checks the cluster flags against each other and the backend (and that
// --host / --iface name an address of this machine). Throws UserError.
void check_flags(const train::TrainConfig& cfg, const ClusterFlags& f);

// The ranks a launcher on this machine starts (--nproc-per-node, else
// --world-size / --nnodes); throws UserError when the world does not split
// evenly, or is more than kMaxRanksPerMachine here or train::kMaxWorldSize
// in all. Sets cfg.world_size to the whole world.
int ranks_on_this_node(train::TrainConfig& cfg, const ClusterFlags& f);

// The address this rank listens on: --iface's, --host, or `fallback`.
std::string listen_address(const ClusterFlags& f, const std::string& fallback);

}  // namespace ddp::launch
