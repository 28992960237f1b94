// train_parallel --max-restarts across machines (docs/restarts.md): the
// node launchers restart together through a new round of their own
// rendezvous (launch/node_rounds.h). A rank killed on another node, and a
// node whose launcher died and was started again, cost a restart and end
// bit-identical to a run that never failed; Ctrl-C on one node ends every
// node without one; with --min-nnodes a node lost for good leaves the
// others to finish. Two "machines" are two launchers on loopback here (the
// protocol is the same), and two network namespaces for the lost node.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "apps_test_util.h"
#include "train/checkpoint.h"
#include "two_hosts.h"

using namespace apps_test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Where the test's two nodes keep things: a shared rendezvous directory
// and checkpoint directory (a shared file system), a TMPDIR per node.
struct NodeDirs {
  TempDir tmp;
  std::string rdv = tmp.path + "/rdv", ck = tmp.path + "/ck", results = tmp.path + "/r.json";
  NodeDirs() {
    fs::create_directories(rdv);
    for (int n = 0; n < 2; ++n) fs::create_directories(tmpdir(n));
  }
  std::string tmpdir(int node) const { return tmp.path + "/tmp" + std::to_string(node); }
  std::string log(int node, const std::string& tag = "") const {
    return tmp.path + "/node" + std::to_string(node) + tag + ".log";
  }
};

// One node's launcher of a 2-node job of 3 short epochs on loopback; the
// run itself is the same as the single-machine reference's.
std::vector<std::string> node_args(const NodeDirs& d, int node, const std::vector<std::string>& extra = {}) {
  return with({binary("train_parallel"), "--nnodes", "2", "--node-rank", std::to_string(node), "--nproc-per-node", "1",
               "--host", "127.0.0.1", "--rendezvous", "file://" + d.rdv, "-b", "32", "--limit", "1280", "--test-limit",
               "1000", "-e", "3", "--timeout", "3", "--no-progress", "--data-dir", mnist_dir(), "--checkpoint-dir", d.ck,
               "--save-results", d.results, "--max-restarts", "2", "--snapshot-every", "0.25"},
              extra);
}

std::unique_ptr<Proc> start_node(const NodeDirs& d, int node, const std::string& tag = "") {
  return std::make_unique<Proc>(node_args(d, node), d.log(node, tag),
                                std::vector<std::pair<std::string, std::string>>{{"TMPDIR", d.tmpdir(node)}});
}

// The uninterrupted run on one machine: its last checkpoint and losses.
struct NodeReference {
  ddp::train::CheckpointData last;
  std::vector<float> losses;
};

NodeReference reference(const NodeDirs& d) {
  const std::string ck = d.tmp.path + "/ref";
  run_ok({binary("train_parallel"), "-w", "2", "-b", "32", "--limit", "1280", "--test-limit", "1000", "-e", "3",
          "--checkpoint-dir", ck},
         d.tmp, "ref");
  return {ddp::train::load_checkpoint(ck + "/checkpoint_epoch3.safetensors"),
          json::parse(read_file(d.tmp.path + "/ref.json")).at("step_losses").get<std::vector<float>>()};
}

// Node 1 is training once its first snapshot is there.
bool node1_trains(const NodeDirs& d) { return wait_for_file(d.ck + "/snapshot.node1.safetensors", 60); }

void expect_bit_identical(const NodeDirs& d, const NodeReference& ref) {
  const auto got = ddp::train::load_checkpoint(d.ck + "/checkpoint_epoch3.safetensors");
  EXPECT_TRUE(same_bits(got.params, ref.last.params)) << "parameters differ from the uninterrupted run's";
  EXPECT_TRUE(same_bits(got.momentum, ref.last.momentum)) << "momentum differs from the uninterrupted run's";
  const json r = json::parse(read_file(d.results));
  EXPECT_TRUE(same_bits(r.at("step_losses").get<std::vector<float>>(), ref.losses)) << "loss history differs";
}

// No key in the rendezvous directory, nothing in either TMPDIR, only the
// epochs' checkpoints in the checkpoint directory, no process of the job.
void expect_no_leftovers(const NodeDirs& d, const std::set<pid_t>& seen) {
  for (pid_t p : seen) EXPECT_FALSE(alive(p)) << "process " << p << " outlived the job";
  for (const auto& e : fs::directory_iterator(d.rdv)) ADD_FAILURE() << "left in the rendezvous: " << e.path();
  for (int n = 0; n < 2; ++n)
    for (const auto& e : fs::directory_iterator(d.tmpdir(n))) ADD_FAILURE() << "left in TMPDIR: " << e.path();
  for (const auto& e : fs::directory_iterator(d.ck)) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(name.starts_with("checkpoint_epoch")) << "left in the checkpoint directory: " << name;
  }
}

// Every process the node launchers ever had, until they end (up to 120 s).
bool wait_noting(std::vector<std::unique_ptr<Proc>>& nodes, std::set<pid_t>& seen) {
  for (int i = 0; i < 12000; ++i) {
    bool all = true;
    for (auto& p : nodes) {
      if (p->status != -1) continue;
      seen.insert(p->pid);
      for (pid_t k : children_of(p->pid)) seen.insert(k);
      if (waitpid(p->pid, &p->status, WNOHANG) != p->pid) all = false;
    }
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& p : nodes) p->wait(1);
  return false;
}

std::string outputs(const std::vector<std::unique_ptr<Proc>>& nodes) {
  std::string s;
  for (size_t i = 0; i < nodes.size(); ++i) s += "--- node log " + std::to_string(i) + ":\n" + nodes[i]->output();
  return s;
}

// Starts both nodes and sends `sig` to node 1's rank once it trains: both
// nodes end with 0, the run bit-identical to the uninterrupted one's, with
// a restart in its results (`r`) and nothing left behind.
void signal_node1_rank(const NodeDirs& d, int sig, std::vector<std::unique_ptr<Proc>>& nodes, json& r) {
  const NodeReference ref = reference(d);
  for (int n = 0; n < 2; ++n) nodes.push_back(start_node(d, n));
  ASSERT_TRUE(node1_trains(d)) << outputs(nodes);
  const std::vector<pid_t> ranks = children_of(nodes[1]->pid);
  ASSERT_EQ(ranks.size(), 1u) << outputs(nodes);
  kill(ranks[0], sig);
  std::set<pid_t> seen(ranks.begin(), ranks.end());
  ASSERT_TRUE(wait_noting(nodes, seen)) << "the job hung\n" << outputs(nodes);
  for (auto& p : nodes) ASSERT_EQ(p->exit_code(), 0) << outputs(nodes);
  expect_bit_identical(d, ref);
  r = json::parse(read_file(d.results));
  ASSERT_TRUE(r.contains("restarts")) << outputs(nodes);
  expect_no_leftovers(d, seen);
}

}  // namespace

TEST(NodeRestarts, ARankKilledOnAnotherNodeRestartsEveryNodeAndEndsBitIdentical) {
  NodeDirs d;
  std::vector<std::unique_ptr<Proc>> nodes;
  json r;
  signal_node1_rank(d, SIGKILL, nodes, r);
  if (HasFatalFailure()) return;
  ASSERT_EQ(r["restarts"].size(), 1u) << r["restarts"].dump();
  const json& x = r["restarts"][0];
  EXPECT_EQ(x["rank"], 1) << x.dump() << " (node 1 reports how its rank failed; node 0's rank only lost a peer)";
  EXPECT_NE(x["cause"].get<std::string>().find("SIGKILL"), std::string::npos) << x.dump();
  EXPECT_EQ(x["world_size"], 2) << x.dump();
  EXPECT_NE(nodes[1]->output().find("restart 1: starting this node's ranks again (ranks 1..1 of 2)"),
            std::string::npos)
      << outputs(nodes);
}

// A stopped rank fails only its peers on the other node; its own launcher
// sees no failure and learns from node 0's next round that the attempt is
// over (it hung there before).
TEST(NodeRestarts, ARankStoppedOnAnotherNodeIsNamedAndEveryNodeRestarts) {
  NodeDirs d;
  std::vector<std::unique_ptr<Proc>> nodes;
  json r;
  signal_node1_rank(d, SIGSTOP, nodes, r);
  if (HasFatalFailure()) return;
  const json& x = r["restarts"][0];
  EXPECT_EQ(x["rank"], 1) << x.dump();
  EXPECT_NE(x["cause"].get<std::string>().find("went silent"), std::string::npos) << x.dump();
}

TEST(NodeRestarts, ANodeWhoseLauncherDiedRejoinsWhenStartedAgainAndTheRunIsBitIdentical) {
  NodeDirs d;
  const NodeReference ref = reference(d);
  std::vector<std::unique_ptr<Proc>> nodes;
  for (int n = 0; n < 2; ++n) nodes.push_back(start_node(d, n));
  ASSERT_TRUE(node1_trains(d)) << outputs(nodes);
  std::set<pid_t> seen;
  for (pid_t k : children_of(nodes[1]->pid)) seen.insert(k);
  kill(nodes[1]->pid, SIGKILL);  // the node's launcher and its rank: the machine went down
  for (pid_t k : seen) kill(k, SIGKILL);
  nodes[1]->wait(10);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  nodes.push_back(start_node(d, 1, "-again"));  // the same command, as a user or a cluster manager would
  std::vector<std::unique_ptr<Proc>> running;
  running.push_back(std::move(nodes[0]));
  running.push_back(std::move(nodes[2]));
  ASSERT_TRUE(wait_noting(running, seen)) << "the job hung\n" << outputs(running);
  for (auto& p : running) ASSERT_EQ(p->exit_code(), 0) << outputs(running);
  expect_bit_identical(d, ref);
  const json r = json::parse(read_file(d.results));
  ASSERT_TRUE(r.contains("restarts")) << outputs(running);
  const json& x = r["restarts"][0];
  EXPECT_EQ(x["rank"], 1) << x.dump();
  EXPECT_NE(x["cause"].get<std::string>().find("lost with node 1's launcher, which was started again"),
            std::string::npos)
      << x.dump();
  // The dead launcher's snapshot was replaced by the new one's, then removed.
  expect_no_leftovers(d, seen);
}

TEST(NodeRestarts, CtrlCOnOneNodeStopsEveryNodeWithoutARestart) {
  NodeDirs d;
  std::vector<std::unique_ptr<Proc>> nodes;
  for (int n = 0; n < 2; ++n) nodes.push_back(start_node(d, n));
  ASSERT_TRUE(node1_trains(d)) << outputs(nodes);
  kill(nodes[1]->pid, SIGINT);
  std::set<pid_t> seen;
  ASSERT_TRUE(wait_noting(nodes, seen)) << "the job hung\n" << outputs(nodes);
  for (auto& p : nodes) EXPECT_EQ(p->exit_code(), 128 + SIGINT) << outputs(nodes);
  // Every rank stopped at the same step, and rank 0 wrote a checkpoint to resume from.
  EXPECT_NE(nodes[0]->output().find("checkpoint written"), std::string::npos) << outputs(nodes);
  EXPECT_EQ(outputs(nodes).find("restart 1"), std::string::npos) << "a stop on purpose used a restart\n"
                                                                 << outputs(nodes);
  for (const auto& e : fs::directory_iterator(d.rdv)) ADD_FAILURE() << "left in the rendezvous: " << e.path();
  for (pid_t p : seen) EXPECT_FALSE(alive(p)) << "process " << p << " outlived the job";
  // The fix the stop names works on every node: the same command plus
  // --resume auto (node 1 holds no checkpoint; only rank 0 reads one).
  std::vector<std::unique_ptr<Proc>> again;
  for (int n = 0; n < 2; ++n)
    again.push_back(std::make_unique<Proc>(node_args(d, n, {"--resume", "auto"}), d.log(n, "-resumed"),
                                           std::vector<std::pair<std::string, std::string>>{{"TMPDIR", d.tmpdir(n)}}));
  ASSERT_TRUE(wait_noting(again, seen)) << "the resumed job hung\n" << outputs(again);
  for (auto& p : again) EXPECT_EQ(p->exit_code(), 0) << outputs(again);
}

TEST(NodeRestarts, MinNnodesAndRejoinTimeoutNeedWhatTheyActOn) {
  TempDir tmp;
  const std::vector<std::string> base = {binary("train_parallel"), "--data-dir", mnist_dir(), "--limit", "256",
                                         "-e", "1", "--no-progress"};
  const struct {
    std::vector<std::string> flags;
    std::string says;
  } cases[] = {
      {{"-w", "2", "--min-nnodes", "1"}, "add --max-restarts N"},
      {{"-w", "2", "--rejoin-timeout", "5", "--max-restarts", "1"}, "they need --nnodes M > 1"},
      {{"--nnodes", "2", "--node-rank", "0", "--nproc-per-node", "1", "--host", "127.0.0.1", "--rendezvous",
        "file://" + tmp.path, "--max-restarts", "1", "--min-nnodes", "3"},
       "--min-nnodes 3 is more than --nnodes 2"},
  };
  for (const auto& c : cases) {
    Proc p(with(base, c.flags), tmp.path + "/log");
    ASSERT_TRUE(p.wait(30));
    EXPECT_EQ(p.exit_code(), 1) << p.output();
    EXPECT_NE(p.output().find(c.says), std::string::npos) << p.output();
  }
}

// The test: two "machines" (network namespaces over a veth pair);
// node 1's launcher and rank are killed for good in the first epoch. With
// --min-nnodes 1 node 0 waits --rejoin-timeout for it, then finishes the
// job alone from its snapshot, the rest of the epoch dealt to its one rank.
TEST(NodeRestarts, WithMinNnodes1Node0FinishesAloneWhenNode1IsLostForGood) {
  TwoHosts hosts;
  if (!hosts.error.empty()) GTEST_SKIP() << hosts.error;
  NodeDirs d;
  std::vector<std::unique_ptr<Proc>> nodes;
  for (int n = 0; n < 2; ++n) {
    // Two threads per node: once node 1 is gone, node 0 has both cores.
    const std::vector<std::string> argv =
        with(hosts.in(n == 0 ? hosts.a : hosts.b),
             {binary("train_parallel"), "--nnodes", "2", "--node-rank", std::to_string(n), "--nproc-per-node", "1",
              "--iface", "veth0", "--rendezvous", "file://" + d.rdv, "-e", "2", "--threads", "2", "--cpu-bind",
              "none", "--no-progress", "--data-dir", mnist_dir(), "--checkpoint-dir", d.ck, "--save-results",
              d.results, "--max-restarts", "1", "--snapshot-every", "1", "--min-nnodes", "1", "--rejoin-timeout",
              "2", "--timeout", "5"});
    nodes.push_back(std::make_unique<Proc>(argv, d.log(n), std::vector<std::pair<std::string, std::string>>{
                                                               {"TMPDIR", d.tmpdir(n)}, {"OMP_WAIT_POLICY", "passive"}}));
  }
  ASSERT_TRUE(node1_trains(d)) << outputs(nodes);
  TwoHosts::kill_processes(hosts.b);  // node 1's launcher and rank, SIGKILLed: the machine is gone
  ASSERT_TRUE(nodes[0]->wait(300)) << outputs(nodes);
  nodes[1]->wait(10);
  ASSERT_EQ(nodes[0]->exit_code(), 0) << outputs(nodes);
  const json r = json::parse(read_file(d.results));
  EXPECT_GE(r["final_test_accuracy"].get<double>(), 0.975) << outputs(nodes);
  EXPECT_EQ(r["world_size"], 1);
  ASSERT_TRUE(r.contains("restarts")) << outputs(nodes);
  EXPECT_EQ(r["restarts"][0]["world_size"], 1) << r["restarts"].dump();
  EXPECT_NE(r["restarts"][0]["cause"].get<std::string>().find("did not come back within --rejoin-timeout 2 s"),
            std::string::npos)
      << r["restarts"].dump();
  EXPECT_NE(nodes[0]->output().find("continuing with 1 of 2 nodes, 1 rank(s)"), std::string::npos)
      << outputs(nodes);
  for (const auto& e : fs::directory_iterator(d.rdv)) ADD_FAILURE() << "left in the rendezvous: " << e.path();
  for (const auto& e : fs::directory_iterator(d.tmpdir(0))) ADD_FAILURE() << "left in TMPDIR: " << e.path();
}
