// train_parallel --max-restarts N: when a rank dies or goes silent, the
// launcher stops the others and starts every rank again from the latest
// snapshot, at most N times (docs/restarts.md).
//
// Rank 0 writes a snapshot (a checkpoint, train/snapshots.h) every
// --snapshot-every seconds and at each epoch's end, into --checkpoint-dir
// or the job's private directory, and a progress file there. A restart
// resumes from the snapshot exactly as --resume would, so the job ends with
// the parameters, momentum and loss history of a run that never failed.
//
// A failure is restarted when a rank was killed by a signal, went silent
// (the others timed out), or lost contact with a peer. A job stopped on
// purpose (SIGINT, SIGTERM, SIGHUP) is not, nor one whose rank ended with an
// error a restart would repeat (a diverged loss, bad input): such a rank
// leaves a mark (mark_no_restart) before it exits.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "dist/launcher.h"
#include "launch/cluster_flags.h"
#include "launch/node_rounds.h"
#include "train/config.h"

namespace ddp::launch {

// The variables the launcher hands every rank of a job with snapshots.
inline constexpr const char* kSnapshotPathVar = "DDP_SNAPSHOT_PATH";  // where rank 0 writes them
inline constexpr const char* kProgressPathVar = "DDP_PROGRESS_FILE";  // rank 0's progress
inline constexpr const char* kNoRestartVar = "DDP_NO_RESTART_FILE";   // the mark of mark_no_restart
inline constexpr const char* kRestartFromVar = "DDP_RESTART_FROM";    // a restart: the snapshot to resume

// Refuses --max-restarts / --snapshot-every where a restart could not
// restore the job (UserError naming what and the fix): modes whose ranks
// hold state rank 0's snapshot does not (accumulation, local SGD, stale
// gradients, PowerSGD: docs/restarts.md); and --min-nnodes /
// --rejoin-timeout without what they need (--nnodes, --max-restarts).
void check_restartable(const train::TrainConfig& cfg, const ClusterFlags& f);

// In a rank: the launcher's variables into cfg (snapshot_path,
// progress_path, restart_from; node_snapshot on the first rank of a node
// other than rank 0's, which writes that node's snapshot); without them, --snapshot-every with
// --checkpoint-dir still writes snapshots there, and --max-restarts is a
// UserError (another launcher started this rank: only ours restarts).
void apply_restart_env(train::TrainConfig& cfg);

// In a rank: tells the launcher not to restart the job after this rank's
// error (a no-op outside a job with restarts). Never throws.
void mark_no_restart(const std::string& why);

using EnvList = std::vector<std::pair<std::string, std::string>>;

// Where this launcher's ranks stand in one attempt of a job that spans
// machines (0, 0: as the launcher was told; one machine, or the first attempt).
struct AttemptPlan {
  int rank_offset = 0;  // the global rank of this launcher's first rank
  int world_size = 0;   // ranks in all
};

// One start of every rank with `env` added; returns how it ended.
using Attempt = std::function<dist::LaunchOutcome(const EnvList& env, const AttemptPlan& plan)>;

// This launcher's part in a job that spans machines and restarts: before
// every attempt the node launchers agree in a round (launch/node_rounds.h)
// which nodes take part.
struct NodePart {
  NodeRounds* rounds = nullptr;
  int node = 0, nnodes = 1, per_node = 1;
  int min_nnodes = 1;            // fewer nodes than this after a restart end the job
  double rejoin_timeout_s = 60;  // how long node 0 waits for the nodes at a restart
};

// Runs the job through `attempt`, restarting it after each failure while
// cfg.max_restarts allows, as above. Afterwards adds the restarts to
// cfg.save_results, removes the snapshot from --checkpoint-dir after a
// success (the epochs' checkpoints hold the run) and keeps it after a
// failure (the message says how to resume). A job without snapshots is one
// plain attempt. Returns the exit status: the last failure's when restarts
// ran out, with one message naming every failure.
//
// Across machines (`across`), node 0's launcher decides each restart as
// above, and records it; the other nodes' launchers follow its rounds:
// after a failure each waits for node 0's next round, tells node 0 how its
// ranks failed, and starts them again where the round puts them (fewer
// nodes: a smaller world, continued from node 0's snapshot); a deliberate
// end on any node ends the job on every node.
int run_with_restarts(const train::TrainConfig& cfg, const std::string& name, const Attempt& attempt,
                      const NodePart* across = nullptr);

}  // namespace ddp::launch
