// The node launchers' rendezvous of a job that spans machines and restarts
// (train_parallel --nnodes M --max-restarts N, docs/restarts.md): before
// every attempt, the launchers agree in a ROUND which nodes take part, so
// that each knows its ranks' numbers and the world size, and whether the
// attempt continues from a snapshot. It runs on the job's rendezvous store
// (Redis or a shared directory), every value sealed with the job secret
// (dist/sealed_kv.h).
//
// Node 0's launcher leads, like the rendezvous host of torchrun's c10d
// backend: its rank 0 holds the snapshot a restart continues from.
//
//   node 0:  Q = random; put JOB/launch = Q; for each node n > 0: wait for
//            JOB/launch/Q/hello/n = {nonce, its last failure}; with every
//            node, or at the deadline with at least min_nodes of them:
//            put JOB/launch/Q/plan = {round, nodes, their nonces, from_snapshot}
//   node n:  nonce = random; repeat: read JOB/launch; if it changed to Q',
//            put JOB/launch/Q'/hello/n; done when Q'/plan holds n's nonce
//
// As in the ranks' generation protocol (dist/rendezvous.h), a node that
// reads a stale round (left by an earlier job with this job id, or one
// that closed without it) never finds its own nonce in a plan and moves on
// when node 0 opens a new round; so a node whose launcher died and was
// started again joins the next round, if it comes before node 0's
// --rejoin-timeout.
//
// Ending. After a failure the other nodes wait for node 0's next round.
// Node 0 ends the job instead when a node asked it to (put
// JOB/launch/Q/stop/n: Ctrl-C there, a diverged loss, any error a restart
// would repeat), when its own ranks ended so, or when restarts ran out: it
// puts JOB/launch/Q/end = why, waits (briefly) for the round's nodes to
// acknowledge (JOB/launch/Q/ack/n), and removes every key of the job.
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dist/rendezvous.h"

namespace ddp::dist {
class SealedKv;
}

namespace ddp::launch {

// How a node's last attempt failed, as its launcher saw it (a rank of its
// own: "rank 3", "was killed by signal 9 (SIGKILL)"); rank -1: none.
struct NodeFailure {
  int rank = -1;
  std::string cause;
  bool new_launcher = false;  // the node's launcher joins its first round: an earlier one died (or this is round 0)
};

// What a round decided.
struct Round {
  int number = 0;              // 0: the job's first attempt; k: its k-th restart
  std::vector<int> nodes;      // the nodes taking part, ascending (node 0 first)
  bool from_snapshot = false;  // the attempt continues from node 0's latest snapshot
  std::string ended;           // not node 0: node 0 ended the job instead of a round ("": a round); why
  std::string stop;            // node 0: a node asked to stop the job instead ("": none); why, naming it

  // Where `node` stands among the round's nodes (its ranks are
  // position x ranks-per-node onwards); -1 when it is not one of them.
  int position(int node) const;
};

class NodeRounds {
 public:
  // `shape`: what every node's launcher must agree on, as the flags say it
  // ("--nnodes 2, --nproc-per-node 1, --max-restarts 2"); node 0 refuses a
  // node whose shape differs, naming both. Throws UserError when the store
  // cannot be reached.
  NodeRounds(dist::RendezvousSpec spec, int node, int nnodes, std::string shape = "");
  ~NodeRounds();
  NodeRounds(const NodeRounds&) = delete;
  NodeRounds& operator=(const NodeRounds&) = delete;

  bool leads() const { return node_ == 0; }

  // Node 0: opens round `number` and waits up to `wait` for the other
  // nodes; decides with all of them, or at the deadline with at least
  // `min_nodes`. A node that asked to stop in the previous round ends the
  // wait (Round::stop). Throws UserError naming the missing nodes when
  // fewer than min_nodes came.
  Round lead(int number, bool from_snapshot, std::chrono::milliseconds wait, int min_nodes);

  // Another node: waits up to `wait` for a round of node 0 that takes this
  // node. `failure` is how this node's last attempt failed (none before
  // the first): node 0 records it. Returns the round, or (Round::ended)
  // that node 0 ended the job. Throws UserError after `wait`.
  Round join(std::chrono::milliseconds wait, const NodeFailure& failure);

  // Node 0: the failures the other nodes reported when they joined the
  // current round, by node.
  const std::map<int, NodeFailure>& reports() const { return reports_; }

  // Another node: its ranks failed; says so at once (node 0's ranks may be
  // waiting for a stopped one of this node's and never fail themselves).
  // Never throws.
  void report_failure(const NodeFailure& failure);

  // While this node's ranks run an attempt (dist::LaunchOptions::abandon):
  // why the attempt is over elsewhere, or "". Node 0: another node reported
  // a failure or a stop; another node: node 0 opened a new round or ended
  // the job. Never throws.
  std::string abandon_reason();

  // Another node: this node's job must not be restarted (`why`); tells node
  // 0 and waits up to `wait` for it to end the job. Never throws.
  void stop(const std::string& why, std::chrono::milliseconds wait);

  // Node 0: a node asked to stop in the current round? Its reason, or "".
  std::string stop_requested();

  // Node 0: the job ends (failed, stopped, or restarts ran out): tells the
  // nodes waiting for a round, waits up to `wait` for each to acknowledge,
  // then removes every key. Never throws.
  void end(const std::string& why, std::chrono::milliseconds wait);

  // Node 0: the job succeeded: removes every key. Never throws.
  void finish();

 private:
  void remove_keys();
  std::string stop_in(const std::string& round);
  std::string key(const std::string& round, const std::string& what) const;
  dist::RendezvousSpec spec_;
  int node_, nnodes_;
  std::string shape_;
  std::unique_ptr<dist::SealedKv> kv_;
  std::string current_;                // the round this node is in ("" before the first)
  std::vector<std::string> opened_;    // node 0: the rounds it opened (their keys to remove)
  std::vector<int> members_;           // the current round's nodes
  std::map<int, NodeFailure> reports_;
};

}  // namespace ddp::launch
