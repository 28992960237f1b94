// train_parallel on an emulated cluster (build/emulated_cluster running one
// node launcher per network namespace): it trains as over loopback, its
// all-reduce pays for the link's rate, and nothing is left however the job
// ends. Needs root; skips itself otherwise.
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>

#include <filesystem>
#include <functional>
#include <regex>
#include <nlohmann/json.hpp>

#include "netemu/link_spec.h"
#include "netemu/network.h"
#include "netemu_test_util.h"

using namespace apps_test;
using namespace netemu_test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kCommon = {"--dropout", "0", "--limit", "1280", "-e", "2", "--no-progress",
                                          "--data-dir", mnist_dir()};

// emulated_cluster at `rate` running train_parallel on every node, meeting
// in `dir`; `train` are train_parallel's further flags.
std::vector<std::string> cluster_job(const std::string& rate, const std::string& dir,
                                     const std::vector<std::string>& train) {
  return with({binary("emulated_cluster"), "--nodes", "2", "--rate", rate, "--", binary("train_parallel"), "--nnodes",
               "{nnodes}", "--node-rank", "{node}", "--nproc-per-node", "1", "--threads", "{ncores}", "-b", "64",
               "--rendezvous", "file://" + dir, "--iface", "{iface}"},
              train);
}

json results(const std::string& path) { return json::parse(read_file(path)); }

TEST(EmulatedCluster, TwoRanksOverA1GbitLinkTrainAsOverLoopbackAndPayForTheRate) {
  NETEMU_REQUIRE_PRIVILEGES();
  TempDir tmp;
  Proc loop(with({binary("train_parallel"), "-w", "2", "-b", "64", "--save-results", tmp.path + "/loop.json"},
                 kCommon),
            tmp.path + "/loop.log");
  ASSERT_TRUE(loop.wait(180));
  ASSERT_EQ(loop.exit_code(), 0) << loop.output();
  Proc job(cluster_job("1gbit", tmp.path, with({"--save-results", tmp.path + "/net.json"}, kCommon)),
           tmp.path + "/net.log");
  ASSERT_TRUE(job.wait(180)) << job.output();
  ASSERT_EQ(job.exit_code(), 0) << job.output();
  EXPECT_NE(job.output().find("[node 1] train_parallel: node 1 of 2"), std::string::npos) << job.output();
  EXPECT_NE(job.output().find("listening on 10.78.0.2"), std::string::npos) << job.output();

  const json a = results(tmp.path + "/loop.json"), b = results(tmp.path + "/net.json");
  ASSERT_EQ(a["step_losses"].size(), 20u);
  ASSERT_EQ(b["step_losses"].size(), 20u);
  for (size_t i = 0; i < 20; ++i) {
    const double x = a["step_losses"][i], y = b["step_losses"][i];
    EXPECT_NEAR(x, y, 2e-4 * std::max(1.0, x)) << "step " << i;
  }
  // A ring all-reduce over 2 ranks sends each rank's half of the gradient
  // (reduce-scatter) and then gets the other half back (all-gather): the
  // whole gradient crosses the link each way, 2 (N-1)/N x 4 x parameters.
  const double bytes = 2.0 * (2 - 1) / 2 * 4 * b["num_params"].get<double>();
  double busy = 0;
  for (const auto& e : b["epochs"]) busy += e["allreduce_busy_s"].get<double>();
  const double per_step = busy / (b["steps_per_epoch"].get<double>() * b["epochs"].size());
  const double floor = 0.8 * bytes * 8 / 1e9;
  std::printf("all-reduce per step over 1 Gbit/s: %.2f ms (the link's rate alone: %.2f ms)\n", 1e3 * per_step,
              1e3 * bytes * 8 / 1e9);
  // A weak check on a busy machine: allreduce_busy_s also counts the
  // wait for the later rank. The next test times the all-reduce alone.
  EXPECT_GE(per_step, floor) << "the all-reduce did not pay for the link's rate: not shaped?";
}

// The shortest of 40 Gloo all-reduces of the model's gradient (421,642
// floats) between 2 ranks, each started through `prefix(rank)` and
// listening on `host(rank)`; every call starts together (a barrier). The
// shortest: what the path allows, with the least of a busy machine's noise.
double gloo_allreduce_ms(const std::function<std::vector<std::string>(int)>& prefix,
                         const std::function<std::string(int)>& host, const TempDir& tmp, const std::string& job) {
  std::vector<std::unique_ptr<Proc>> ranks;
  for (int r = 0; r < 2; ++r) {
    auto argv = prefix(r);
    argv.insert(argv.end(), {DIST_TEST_WORKER, "bench", "421642", "40"});
    ranks.push_back(std::make_unique<Proc>(
        argv, tmp.path + "/" + job + std::to_string(r) + ".log",
        std::vector<std::pair<std::string, std::string>>{{"RANK", std::to_string(r)}, {"WORLD_SIZE", "2"},
                                                         {"DDP_RENDEZVOUS_DIR", tmp.path}, {"DDP_JOB_ID", job},
                                                         {"DDP_GLOO_HOST", host(r)}}));
  }
  for (auto& p : ranks) {
    EXPECT_TRUE(p->wait(120)) << p->output();
    EXPECT_EQ(p->exit_code(), 0) << p->output();
  }
  const std::string out = ranks[0]->output();
  std::printf("%s: %s", job.c_str(), out.c_str());
  const size_t at = out.find(", min ");
  return at == std::string::npos ? -1 : std::atof(out.c_str() + at + 6);
}

TEST(EmulatedCluster, AGlooAllReduceOfTheGradientPaysForTheRate) {
  NETEMU_REQUIRE_PRIVILEGES();
  TempDir tmp;
  ddp::netemu::NetworkOptions o;
  o.nodes = 2;
  o.link = ddp::netemu::parse_link_spec("1gbit");
  ddp::netemu::EmulatedNetwork net(o);
  const double link_ms = 1e3 * 4.0 * 421642 * 8 / 1e9;  // the whole gradient each way (a 2-rank ring)
  const double emulated = gloo_allreduce_ms([&](int r) { return net.command(r, {}); },
                                            [&](int r) { return net.node(r).address; }, tmp, "emulated");
  const double loopback = gloo_allreduce_ms([](int) { return std::vector<std::string>{}; },
                                            [](int) { return std::string("127.0.0.1"); }, tmp, "loopback");
  EXPECT_GE(emulated, 0.8 * link_ms) << "the link's rate alone takes " << link_ms << " ms";
  EXPECT_LT(emulated, 3 * link_ms);
  // The control: without the emulated link the same all-reduce is faster
  // than the rate would allow, so the bound above measures the shaping.
  EXPECT_LT(loopback, link_ms);
  EXPECT_GT(loopback, 0);
}

// A long job on the emulated cluster, started; returns once both nodes
// train. `descendants` and `namespaces` get what it made.
struct RunningJob {
  TempDir tmp;
  std::unique_ptr<Proc> job;
  std::vector<pid_t> descendants;
  std::set<ino_t> namespaces;

  RunningJob() {
    job = std::make_unique<Proc>(
        cluster_job("1gbit", tmp.path, {"--timeout", "10", "--dropout", "0", "--limit", "6400", "-e", "50",
                                        "--no-progress", "--data-dir", mnist_dir()}),
        tmp.path + "/job.log");
    for (int i = 0; i < 600 && !started(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::this_thread::sleep_for(std::chrono::seconds(2));  // into the first steps
    namespaces = descendant_namespaces(job->pid, descendants);
  }
  // However the test ends, the job does not outlive it.
  ~RunningJob() {
    if (alive(job->pid)) {
      kill(job->pid, SIGKILL);
      job->wait(10);
    }
    for (pid_t p : descendants)
      if (alive(p)) kill(p, SIGKILL);
  }
  bool started() const {
    const std::string out = job->output();
    return out.find("[node 0] train_parallel: node 0") != std::string::npos &&
           out.find("[node 1] train_parallel: node 1") != std::string::npos;
  }
  // The rank process of node 1 (a child of node 1's train_parallel launcher).
  pid_t rank_of_node1() const {
    for (pid_t p : descendants) {
      const std::string cmd = read_file("/proc/" + std::to_string(p) + "/cmdline");
      const std::string parent = read_file("/proc/" + std::to_string(parent_of(p)) + "/cmdline");
      if (cmd.find(std::string("--node-rank\0" "1\0", 14)) != std::string::npos &&
          parent.find("train_parallel") != std::string::npos)
        return p;
    }
    return -1;
  }
  static pid_t parent_of(pid_t p) {
    const std::string stat = read_file("/proc/" + std::to_string(p) + "/stat");
    const size_t close = stat.rfind(')');
    return close == std::string::npos ? -1 : std::atoi(stat.c_str() + close + 4);
  }
};

TEST(EmulatedCluster, CtrlCStopsEveryNodeAndLeavesNothing) {
  NETEMU_REQUIRE_PRIVILEGES();
  RunningJob j;
  ASSERT_TRUE(j.started()) << j.job->output();
  ASSERT_EQ(j.namespaces.size(), 3u) << "a switch and two nodes";
  ASSERT_GE(j.descendants.size(), 7u) << "3 holders, 2 node launchers, 2 ranks";
  kill(j.job->pid, SIGINT);
  ASSERT_TRUE(j.job->wait(60)) << j.job->output();
  EXPECT_EQ(j.job->exit_code(), 128 + SIGINT) << j.job->output();
  expect_nothing_left(j.namespaces, j.descendants, 10);
}

TEST(EmulatedCluster, AKilledOwnerLeavesNothing) {
  NETEMU_REQUIRE_PRIVILEGES();
  RunningJob j;
  ASSERT_TRUE(j.started()) << j.job->output();
  ASSERT_EQ(j.namespaces.size(), 3u);
  kill(j.job->pid, SIGKILL);
  ASSERT_TRUE(j.job->wait(10));
  // The holders die at once; the ranks get SIGTERM and their launchers'
  // grace, then SIGKILL.
  expect_nothing_left(j.namespaces, j.descendants, 60);
}

TEST(EmulatedCluster, AKilledRankEndsTheJobAndLeavesNothing) {
  NETEMU_REQUIRE_PRIVILEGES();
  RunningJob j;
  ASSERT_TRUE(j.started()) << j.job->output();
  const pid_t rank = j.rank_of_node1();
  ASSERT_GT(rank, 0) << j.job->output();
  kill(rank, SIGKILL);
  ASSERT_TRUE(j.job->wait(60)) << j.job->output();
  EXPECT_EQ(j.job->exit_code(), 128 + SIGKILL) << j.job->output();
  EXPECT_NE(j.job->output().find("emulated_cluster: node 1 ended with status 137"), std::string::npos)
      << j.job->output();
  expect_nothing_left(j.namespaces, j.descendants, 10);
}

TEST(EmulatedCluster, WithoutPrivilegesOneClearErrorAndNothingStarts) {
  NETEMU_REQUIRE_PRIVILEGES();  // to be able to take them away
  TempDir tmp;
  // Root without CAP_NET_ADMIN in its bounding set cannot get it back at exec.
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0);
    const int fd = open((tmp.path + "/log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    const std::string exe = binary("emulated_cluster");
    execl(exe.c_str(), exe.c_str(), "--rate", "1gbit", "--measure", nullptr);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  const std::string out = read_file(tmp.path + "/log");
  EXPECT_EQ(WEXITSTATUS(status), 1) << out;
  EXPECT_NE(out.find("emulated_cluster: error: emulating a network needs CAP_NET_ADMIN"), std::string::npos) << out;
  EXPECT_NE(out.find("fix: run it as root"), std::string::npos) << out;
  EXPECT_EQ(out.find("emulated network:"), std::string::npos) << out;
}

TEST(EmulatedCluster, BadFlagsAreOneClearError) {
  TempDir tmp;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--rate", "1gbps", "--measure"}, "bytes per second"},
      {{"--rate", "1gbit"}, "nothing to do"},
      {{"--rate", "1gbit", "--nodes", "1", "--measure"}, "--measure needs 2 nodes"},
      {{"--measure"}, "--rate is required"}};
  for (const auto& [flags, phrase] : cases) {
    Proc p(with({binary("emulated_cluster")}, flags), tmp.path + "/log");
    ASSERT_TRUE(p.wait(10));
    EXPECT_NE(p.exit_code(), 0) << flags[0];
    EXPECT_NE(p.output().find(phrase), std::string::npos) << p.output();
  }
}

}  // namespace

// {rendezvous}: one private directory for the job, the same on every node,
// with a job secret in the environment; gone when emulated_cluster returns,
// and (through its guardian) after a SIGKILL of emulated_cluster.
TEST(EmulatedCluster, TheRendezvousPlaceholderIsAPrivateDirectoryThatGoesWithTheJob) {
  NETEMU_REQUIRE_PRIVILEGES();
  TempDir tmp;
  const std::string show =
      "test -d {rendezvous} && test -n \"$DDP_JOB_SECRET\" && echo dir={rendezvous} secret=${#DDP_JOB_SECRET}";
  Proc ok({binary("emulated_cluster"), "--nodes", "2", "--rate", "1gbit", "--", "/bin/sh", "-c", show},
          tmp.path + "/ok.log");
  ASSERT_TRUE(ok.wait(60)) << ok.output();
  ASSERT_EQ(ok.exit_code(), 0) << ok.output();
  const std::string out = ok.output();
  std::smatch m0;
  ASSERT_TRUE(std::regex_search(out, m0, std::regex("\\[node 0\\] dir=(\\S+) secret=64"))) << out;
  const std::string dir = m0[1];
  EXPECT_NE(ok.output().find("[node 1] dir=" + dir + " secret=64"), std::string::npos) << ok.output();
  EXPECT_FALSE(fs::exists(dir)) << dir;

  Proc killed({binary("emulated_cluster"), "--nodes", "2", "--rate", "1gbit", "--", "/bin/sh", "-c",
               "echo dir={rendezvous}; sleep 60"},
              tmp.path + "/killed.log");
  std::string killed_dir;
  for (int i = 0; i < 1500 && killed_dir.empty(); ++i) {
    std::smatch m;
    const std::string out = killed.output();
    if (std::regex_search(out, m, std::regex("dir=(\\S+)"))) killed_dir = m[1];
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(killed_dir.empty()) << killed.output();
  ASSERT_TRUE(fs::exists(killed_dir));
  kill(killed.pid, SIGKILL);
  ASSERT_TRUE(killed.wait(10));
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    gone = !fs::exists(killed_dir);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(gone) << killed_dir << " outlived a SIGKILL of emulated_cluster";
}
