// The node launchers' rounds (launch/node_rounds.h) on a real shared
// directory, each node a thread: who takes part, stale and foreign rounds,
// the deadline with --min-nnodes, a stop on one node and node 0's end, and
// that no key is left.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <thread>

#include "common/error.h"
#include "launch/node_rounds.h"
#include "test_util.h"

using ddp::launch::NodeFailure;
using ddp::launch::NodeRounds;
using ddp::launch::Round;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

ddp::dist::RendezvousSpec rounds_spec(const test_util::TempDir& dir, const std::string& secret = "job-secret") {
  auto spec = ddp::dist::parse_rendezvous("file://" + dir.path);
  spec.job = "rounds";
  spec.secret = secret;
  return spec;
}

// Node `node` of `nnodes` joins its next round in another thread.
std::future<Round> join_async(const ddp::dist::RendezvousSpec& spec, int node, int nnodes, NodeFailure failure = {}) {
  return std::async(std::launch::async, [=] {
    NodeRounds r(spec, node, nnodes);
    return r.join(10s, failure);
  });
}

}  // namespace

TEST(NodeRounds, EveryNodeJoinsTheRoundNode0OpensAndLearnsItsPlace) {
  test_util::TempDir dir;
  const auto spec = rounds_spec(dir);
  auto n2 = join_async(spec, 2, 3, {5, "was killed by signal 9 (SIGKILL)"});
  auto n1 = join_async(spec, 1, 3);
  NodeRounds lead(spec, 0, 3);
  const Round r = lead.lead(0, false, 10s, 3);
  EXPECT_EQ(r.nodes, (std::vector<int>{0, 1, 2}));
  for (auto* f : {&n1, &n2}) {
    const Round got = f->get();
    EXPECT_EQ(got.nodes, r.nodes);
    EXPECT_EQ(got.number, 0);
    EXPECT_FALSE(got.from_snapshot);
    EXPECT_TRUE(got.ended.empty());
  }
  EXPECT_EQ(r.position(2), 2);
  ASSERT_EQ(lead.reports().count(2), 1u);
  EXPECT_EQ(lead.reports().at(2).rank, 5);
  EXPECT_EQ(lead.reports().at(2).cause, "was killed by signal 9 (SIGKILL)");
  lead.finish();
  EXPECT_TRUE(fs::is_empty(dir.path)) << "a key was left: " << fs::directory_iterator(dir.path)->path();
}

TEST(NodeRounds, RoundsLeftByEarlierJobsAreNotJoined) {
  test_util::TempDir dir;
  {  // an earlier job with this job id and secret left its last round
    NodeRounds stale(rounds_spec(dir), 0, 2);
    (void)stale.lead(3, true, 50ms, 1);
  }
  const auto spec = rounds_spec(dir);
  auto n1 = join_async(spec, 1, 2);
  std::this_thread::sleep_for(300ms);  // node 1 says hello into the stale round, whose plan never takes it
  {  // then a job with another secret writes a round: its values do not verify, so node 1 ignores it
    NodeRounds foreign(rounds_spec(dir, "another-secret"), 0, 2);
    (void)foreign.lead(0, false, 50ms, 1);
  }
  std::this_thread::sleep_for(200ms);
  NodeRounds lead(spec, 0, 2);
  const Round r = lead.lead(0, false, 10s, 2);
  const Round got = n1.get();
  EXPECT_EQ(got.number, 0) << "node 1 joined the stale round 3";
  EXPECT_EQ(got.nodes, (std::vector<int>{0, 1}));
  EXPECT_EQ(r.nodes, got.nodes);
}

TEST(NodeRounds, AtTheDeadlineMinNodesDecideWithoutAMissingNode) {
  test_util::TempDir dir;
  const auto spec = rounds_spec(dir);
  auto n1 = join_async(spec, 1, 3);
  NodeRounds lead(spec, 0, 3);
  const Round r = lead.lead(1, true, 500ms, 2);
  EXPECT_EQ(r.nodes, (std::vector<int>{0, 1}));
  EXPECT_EQ(r.position(2), -1);
  const Round got = n1.get();
  EXPECT_EQ(got.nodes, r.nodes);
  EXPECT_TRUE(got.from_snapshot);
  EXPECT_EQ(got.number, 1);
  // Too few: the error names the missing nodes and the fix.
  try {
    (void)lead.lead(2, true, 200ms, 2);
    ADD_FAILURE() << "decided with 1 node of 3 and --min-nnodes 2";
  } catch (const ddp::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("missing: node 1, 2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("needs 2 node(s) to continue"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("--rejoin-timeout"), std::string::npos) << e.hint();
  }
  lead.finish();
  EXPECT_TRUE(fs::is_empty(dir.path));
}

TEST(NodeRounds, AStopOnAnotherNodeReachesNode0AndNode0sEndReachesEveryNode) {
  test_util::TempDir dir;
  const auto spec = rounds_spec(dir);
  auto n1 = std::async(std::launch::async, [&] {
    NodeRounds r(spec, 1, 3);
    (void)r.join(10s, {});
    r.stop("stopped by SIGINT", 10s);  // returns once node 0 has ended the job
    return true;
  });
  auto n2 = std::async(std::launch::async, [&] {
    NodeRounds r(spec, 2, 3);
    (void)r.join(10s, {});
    return r.join(10s, {1, "exited with status 1"});  // waits for the next round; gets the end
  });
  NodeRounds lead(spec, 0, 3);
  (void)lead.lead(0, false, 10s, 3);
  std::string why;
  for (int i = 0; i < 500 && why.empty(); ++i) {
    why = lead.stop_requested();
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(why, "node 1: stopped by SIGINT");
  lead.end(why, 10s);
  EXPECT_TRUE(n1.get());
  EXPECT_EQ(n2.get().ended, "node 1: stopped by SIGINT");
  EXPECT_TRUE(fs::is_empty(dir.path)) << "a key was left: " << fs::directory_iterator(dir.path)->path();
}

TEST(NodeRounds, ANodeThatFindsNoRoundGivesUpNamingNode0) {
  test_util::TempDir dir;
  NodeRounds n1(rounds_spec(dir), 1, 2);
  try {
    (void)n1.join(200ms, {});
    ADD_FAILURE() << "joined without a node 0";
  } catch (const ddp::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("no node 0 has registered"), std::string::npos) << e.what();
  }
}

TEST(NodeRounds, ANodeStartedWithOtherFlagsIsRefusedOnBothSides) {
  test_util::TempDir dir;
  const auto spec = rounds_spec(dir);
  auto n1 = std::async(std::launch::async, [&] {
    NodeRounds r(spec, 1, 2, "--nnodes 2, --nproc-per-node 1, --max-restarts 1");
    try {
      (void)r.join(10s, {});
    } catch (const ddp::UserError& e) {
      return std::string(e.what());
    }
    return std::string("joined");
  });
  NodeRounds lead(spec, 0, 2, "--nnodes 2, --nproc-per-node 1, --max-restarts 2");
  try {
    (void)lead.lead(0, false, 10s, 2);
    ADD_FAILURE() << "node 0 took a node started with other flags";
  } catch (const ddp::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("node 1 was started with --nnodes 2, --nproc-per-node 1, --max-restarts 1, "
                                         "node 0 with --nnodes 2, --nproc-per-node 1, --max-restarts 2"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NE(n1.get().find("node 0 refused this node"), std::string::npos);
  lead.finish();
}

TEST(NodeRounds, DuringAnAttemptEachSideLearnsThatTheOtherFailed) {
  test_util::TempDir dir;
  const auto spec = rounds_spec(dir);
  NodeRounds n1(spec, 1, 2);
  auto joined = std::async(std::launch::async, [&] { return n1.join(10s, {}); });
  NodeRounds lead(spec, 0, 2);
  (void)lead.lead(0, false, 10s, 2);
  (void)joined.get();
  EXPECT_EQ(lead.abandon_reason(), "");
  EXPECT_EQ(n1.abandon_reason(), "");
  n1.report_failure({1, "was killed by signal 9 (SIGKILL)"});  // node 0's ranks may wait for a stopped peer
  EXPECT_EQ(lead.abandon_reason(), "node 1's ranks failed");
  (void)lead.lead(1, true, 100ms, 1);  // node 0 moves on: node 1's ranks are waiting for a stopped peer of node 0's
  EXPECT_EQ(n1.abandon_reason(), "node 0 started a new round (the job failed elsewhere)");
  lead.finish();
  EXPECT_TRUE(fs::is_empty(dir.path)) << "a key was left: " << fs::directory_iterator(dir.path)->path();
}
