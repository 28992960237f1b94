// train_parallel beyond one launcher on one machine, with the real things:
// mpirun (OpenMPI), a real redis-server, and two "machines" made of two
// network namespaces joined by a veth pair.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>
#include <set>

#include "apps_test_util.h"
#include "two_hosts.h"

using namespace apps_test;
using nlohmann::json;

namespace {

const std::vector<std::string> kCommon = {"--dropout", "0", "--limit", "1280", "-e", "2", "--no-progress"};
// The job secret of ranks started by another launcher (torchrun style): a
// Redis rendezvous requires one (docs/security.md).
const std::string kJobSecret = "test-job-secret-0123456789abcdef";

int cores() { return static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)); }

std::vector<std::pair<std::string, std::string>> root_env() {
  return {{"OMPI_ALLOW_RUN_AS_ROOT", "1"}, {"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"}};
}

void expect_same_steps(const json& a, const json& b, size_t steps) {
  ASSERT_TRUE(a.contains("step_losses") && b.contains("step_losses"));
  ASSERT_EQ(a["step_losses"].size(), steps);
  ASSERT_EQ(b["step_losses"].size(), steps);
  for (size_t i = 0; i < steps; ++i) {
    const double x = a["step_losses"][i].get<double>(), y = b["step_losses"][i].get<double>();
    EXPECT_NEAR(x, y, 2e-4 * std::max(1.0, x)) << "step " << i;
  }
  EXPECT_NEAR(a["epochs"][1]["test_loss"].get<double>(), b["epochs"][1]["test_loss"].get<double>(), 2e-4);
}

// The reference: the same job over Gloo with train_parallel's own launcher.
json gloo_reference(int world, const TempDir& tmp) {
  return run_ok(with({binary("train_parallel"), "-w", std::to_string(world), "-b", std::to_string(128 / world)},
                     kCommon),
                tmp, "gloo" + std::to_string(world));
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// A child that dies with this test process, whatever ends it (used for
// servers: a crashed test must not leave one behind).
pid_t spawn_tied(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// A redis-server on a free port, stopped (SIGKILL + wait) however the test
// ends. `prefix` runs it elsewhere (e.g. inside a network namespace).
struct RedisServer {
  pid_t pid = -1;
  int port = -1;
  std::string address, log;
  RedisServer(const std::string& bind_addr, const std::string& dir, const std::vector<std::string>& prefix = {})
      : port(free_port()), address(bind_addr), log(dir + "/redis.log") {
    std::vector<std::string> argv = prefix;
    // Protected mode off: other "machines" connect (the address is private to the test).
    argv.insert(argv.end(), {which("redis-server"), "--port", std::to_string(port), "--bind", bind_addr, "--save",
                             "", "--appendonly", "no", "--dir", dir, "--protected-mode", "no"});
    pid = spawn_tied(argv, log);
  }
  // Waits until the server answers PING (through `prefix`, as it was started).
  bool ready(const std::vector<std::string>& prefix = {}) {
    std::vector<std::string> ping = prefix;
    ping.insert(ping.end(), {which("redis-cli"), "-h", address, "-p", std::to_string(port), "ping"});
    for (int i = 0; i < 250; ++i) {
      if (run_cmd(ping) == 0 && alive(pid)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  std::string url(const std::string& job) const {
    return "redis://" + address + ":" + std::to_string(port) + "/" + job;
  }
  ~RedisServer() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

bool have_mpirun() { return !which("mpirun").empty(); }

// ---- MPI -------------------------------------------------------------------

std::vector<std::string> mpirun(int n) {
  std::vector<std::string> a = {which("mpirun"), "-np", std::to_string(n)};
  if (n > cores()) a.push_back("--oversubscribe");
  return a;
}

TEST(MpiBackend, TwoRanksUnderMpirunMatchGlooStepByStep) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed (scripts/install_deps.sh installs openmpi-bin)";
  TempDir tmp;
  const json gloo = gloo_reference(2, tmp);
  const json mpi = run_ok(with(with(mpirun(2), {binary("train_parallel"), "--backend", "mpi", "-b", "64"}), kCommon),
                          tmp, "mpi2", root_env());
  expect_same_steps(gloo, mpi, 20);
  EXPECT_EQ(mpi["world_size"], 2);
  EXPECT_EQ(mpi["config"]["backend"], "mpi");
  // --overlap auto: with a core per rank and none spare, no communication thread.
  EXPECT_EQ(mpi["allreduce"]["overlap"], cores() == 2 ? "none" : "thread");
  // The other choice gives the same bits (the same sums, in the same order).
  const json thread = run_ok(with(with(mpirun(2), {binary("train_parallel"), "--backend", "mpi", "-b", "64",
                                                   "--overlap", cores() == 2 ? "thread" : "none"}), kCommon),
                             tmp, "mpi2-other-overlap", root_env());
  expect_same_steps(mpi, thread, 20);
  EXPECT_EQ(thread["step_losses"], mpi["step_losses"]);
}

// train_parallel --backend mpi -w 4 runs itself through mpirun (here with
// more ranks than cores: --oversubscribe), and as root without the user
// having to set OMPI_ALLOW_RUN_AS_ROOT.
TEST(MpiBackend, FourRanksThroughTheSelfLaunchMatchGlooStepByStep) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  TempDir tmp;
  const json gloo = gloo_reference(4, tmp);
  const json mpi = run_ok(with({binary("train_parallel"), "--backend", "mpi", "-w", "4", "-b", "32"}, kCommon), tmp,
                          "mpi4");
  expect_same_steps(gloo, mpi, 20);
  EXPECT_EQ(mpi["world_size"], 4);
  EXPECT_EQ(mpi["config"]["backend"], "mpi");
}

// The MPI rank of a process, from the environment mpirun gave it.
int mpi_rank_of(pid_t pid) {
  std::string env = read_file("/proc/" + std::to_string(pid) + "/environ");
  const std::string key = std::string("OMPI_COMM_WORLD_RANK=");
  for (size_t at = 0; at < env.size();) {
    const size_t end = env.find('\0', at);
    const std::string entry = env.substr(at, end - at);
    if (entry.rfind(key, 0) == 0) return std::atoi(entry.c_str() + key.size());
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return -1;
}

// True once the process is gone (or a zombie), waiting up to `seconds`: a
// rank mpirun has killed may still be tearing down its memory when mpirun
// returns.
bool gone_within(pid_t pid, double seconds) {
  for (int i = 0; i < seconds * 50; ++i) {
    if (!alive(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !alive(pid);
}

// Kills rank 1 of a running MPI job whose mpirun is `mpirun_pid`; returns
// the pids of the ranks.
std::vector<pid_t> kill_rank1(pid_t mpirun_pid, const Proc& job) {
  std::vector<pid_t> ranks;
  for (int i = 0; i < 300 && ranks.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ranks = children_of(mpirun_pid);
  }
  EXPECT_EQ(ranks.size(), 2u) << job.output();
  std::this_thread::sleep_for(std::chrono::seconds(3));  // let training start
  for (pid_t r : ranks)
    if (mpi_rank_of(r) == 1) kill(r, SIGKILL);
  return ranks;
}

TEST(MpiBackend, AKilledRankUnderMpirunEndsTheJobNamingIt) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  TempDir tmp;
  Proc job(with(mpirun(2), {binary("train_parallel"), "--backend", "mpi", "-e", "50", "--limit", "6400",
                            "--no-progress", "--data-dir", mnist_dir()}),
           tmp.path + "/job.log", root_env());
  const auto ranks = kill_rank1(job.pid, job);
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(job.wait(60)) << job.output();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count(), 10.0);
  EXPECT_NE(job.exit_code(), 0);
  const std::string out = job.output();
  EXPECT_NE(out.find("process rank 1"), std::string::npos) << out;  // mpirun's own report
  EXPECT_NE(out.find("signal 9"), std::string::npos) << out;
  for (pid_t r : ranks) EXPECT_TRUE(gone_within(r, 3)) << "rank process " << r << " outlived the job";
}

TEST(MpiBackend, AKilledRankOfTheSelfLaunchIsNamedInOneLine) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  TempDir tmp;
  Proc job({binary("train_parallel"), "--backend", "mpi", "-w", "2", "-e", "50", "--limit", "6400", "--no-progress",
            "--data-dir", mnist_dir()},
           tmp.path + "/job.log");
  pid_t mpirun_pid = -1;
  for (int i = 0; i < 200 && mpirun_pid < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto kids = children_of(job.pid);
    if (!kids.empty()) mpirun_pid = kids[0];
  }
  ASSERT_GT(mpirun_pid, 0) << job.output();
  const auto ranks = kill_rank1(mpirun_pid, job);
  ASSERT_TRUE(job.wait(60)) << job.output();
  EXPECT_EQ(job.exit_code(), 128 + SIGKILL) << job.output();
  const std::string out = job.output();
  EXPECT_NE(out.find("train_parallel: rank 1 (on "), std::string::npos) << out;
  EXPECT_NE(out.find("was killed by signal 9 (SIGKILL); mpirun stopped the other ranks"), std::string::npos) << out;
  for (pid_t r : ranks) EXPECT_TRUE(gone_within(r, 3)) << "rank process " << r << " outlived the job";
  EXPECT_TRUE(gone_within(mpirun_pid, 3));
}

// SIGTERM to the self-launching train_parallel reaches the ranks through
// mpirun; they stop together at a step, rank 0 writes a checkpoint, and the
// job ends with 128 + SIGTERM.
TEST(MpiBackend, SigtermToTheSelfLaunchStopsAllRanksWithACheckpoint) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  TempDir tmp;
  Proc job({binary("train_parallel"), "--backend", "mpi", "-w", "2", "-e", "50", "--limit", "6400", "--no-progress",
            "--data-dir", mnist_dir(), "--checkpoint-dir", tmp.path + "/ck"},
           tmp.path + "/job.log");
  ASSERT_TRUE(wait_for_file(tmp.path + "/ck/checkpoint_epoch1.safetensors", 120)) << job.output();
  kill(job.pid, SIGTERM);
  ASSERT_TRUE(job.wait(60)) << job.output();
  EXPECT_EQ(job.exit_code(), 128 + SIGTERM) << job.output();
  const std::string out = job.output();
  EXPECT_NE(out.find("stopped by SIGTERM in epoch"), std::string::npos) << out;
  EXPECT_NE(out.find("checkpoint written"), std::string::npos) << out;
}

// A terminal's Ctrl-C (here: SIGINT to the whole process group, as
// `kill -INT -PGID` sends it) reaches only the launcher, not mpirun (in a
// group of its own): one forwarded signal, so mpirun stops the ranks at a
// step and waits for them. Once it also got the group's SIGINT, took the
// forwarded one as a second and exited at once: the ranks ran on after the
// command returned, without a checkpoint, leaving /dev/shm segments.
TEST(MpiBackend, CtrlCToTheProcessGroupStopsAllRanksWithACheckpointAndLeavesNothing) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  const std::string setsid = which("setsid");
  if (setsid.empty()) GTEST_SKIP() << "setsid (util-linux) is not installed";
  auto segments = [] {
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm"))
      if (e.path().filename().string().starts_with("vader_segment")) names.insert(e.path().filename().string());
    return names;
  };
  const auto before = segments();
  TempDir tmp;
  Proc job({setsid, binary("train_parallel"), "--backend", "mpi", "-w", "2", "-e", "50", "--limit", "6400",
            "--no-progress", "--data-dir", mnist_dir(), "--checkpoint-dir", tmp.path + "/ck"},
           tmp.path + "/job.log");
  ASSERT_TRUE(wait_for_file(tmp.path + "/ck/checkpoint_epoch1.safetensors", 120)) << job.output();
  const std::vector<pid_t> mpirun = children_of(job.pid);
  ASSERT_EQ(mpirun.size(), 1u) << job.output();
  const std::vector<pid_t> ranks = children_of(mpirun[0]);
  ASSERT_EQ(ranks.size(), 2u) << job.output();
  kill(-job.pid, SIGINT);
  ASSERT_TRUE(job.wait(60)) << job.output();
  EXPECT_EQ(job.exit_code(), 128 + SIGINT) << job.output();
  const std::string out = job.output();
  EXPECT_NE(out.find("checkpoint written"), std::string::npos) << out;
  for (pid_t r : ranks) EXPECT_TRUE(gone_within(r, 0.5)) << "rank process " << r << " outlived the launcher";
  for (const std::string& s : segments()) EXPECT_TRUE(before.count(s)) << "left behind: /dev/shm/" << s;
}

TEST(MpiBackend, MissingMpirunIsOneClearError) {
  TempDir tmp;
  Proc p({binary("train_parallel"), "--backend", "mpi", "-w", "2", "--limit", "640", "--data-dir", mnist_dir()},
         tmp.path + "/log", {{"PATH", tmp.path}});
  ASSERT_TRUE(p.wait(30));
  EXPECT_EQ(p.exit_code(), 1);
  EXPECT_NE(p.output().find("'mpirun' was not found in PATH"), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("openmpi-bin"), std::string::npos) << p.output();
}

TEST(MpiBackend, GlooOnlyFlagsAreRefused) {
  TempDir tmp;
  Proc p({binary("train_parallel"), "--backend", "mpi", "--rendezvous", "redis://h/j"}, tmp.path + "/log");
  ASSERT_TRUE(p.wait(10));
  EXPECT_EQ(p.exit_code(), 1);
  EXPECT_NE(p.output().find("for the gloo backend"), std::string::npos) << p.output();
}

// ---- Gloo rendezvous through Redis ------------------------------------------

// Keys a crashed earlier run with the same job id left behind: a generation,
// Gloo addresses under it, and a stale welcome. The new run must not mind.
void plant_stale_keys(const RedisServer& redis, const std::string& job) {
  const std::string cli = which("redis-cli"), port = std::to_string(redis.port);
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
           {job + "/gen", "0123456789abcdef"},
           {job + "/0123456789abcdef/rank_0", "stale"},
           {job + "/0123456789abcdef/hello/1", "old"},
           {job + "/0123456789abcdef/welcome/1", "old"}})
    ASSERT_EQ(run_cmd({cli, "-h", redis.address, "-p", port, "set", k, v}), 0);
}

TEST(GlooRendezvous, RanksMeetThroughARedisServerDespiteStaleKeys) {
  if (which("redis-server").empty()) GTEST_SKIP() << "redis-server is not installed";
  TempDir tmp;
  RedisServer redis("127.0.0.1", tmp.path);
  ASSERT_TRUE(redis.ready()) << read_file(redis.log);
  plant_stale_keys(redis, "job1");
  const json gloo = gloo_reference(2, tmp);
  // train_parallel launches both ranks; they meet at the Redis server.
  const json a = run_ok(with({binary("train_parallel"), "-w", "2", "-b", "64", "--rendezvous", redis.url("job1")},
                             kCommon),
                        tmp, "redis-launched");
  expect_same_steps(gloo, a, 20);
  // The same job id again, the ranks started by another launcher
  // (torchrun style: RANK and WORLD_SIZE in their environment).
  std::vector<std::unique_ptr<Proc>> ranks;
  for (int r = 1; r >= 0; --r)  // rank 0 last: the others wait for it
    ranks.push_back(std::make_unique<Proc>(
        with({binary("train_parallel"), "-b", "64", "--rendezvous", redis.url("job1"), "--save-results",
              tmp.path + "/ext" + std::to_string(r) + ".json", "--data-dir", mnist_dir()},
             kCommon),
        tmp.path + "/ext" + std::to_string(r) + ".log",
        std::vector<std::pair<std::string, std::string>>{{"RANK", std::to_string(r)}, {"WORLD_SIZE", "2"},
                                                         {"LOCAL_RANK", std::to_string(r)},
                                                         {"LOCAL_WORLD_SIZE", "2"},
                                                         {"DDP_JOB_SECRET", kJobSecret}}));
  for (auto& p : ranks) {
    ASSERT_TRUE(p->wait(180)) << p->output();
    EXPECT_EQ(p->exit_code(), 0) << p->output();
  }
  expect_same_steps(gloo, json::parse(read_file(tmp.path + "/ext0.json")), 20);
  // A finished run clears its generation, and a rank that said hello into a
  // stale generation takes it back: only the job's generation key is left
  // (and the crashed run's keys, which nothing reads again).
  Proc keys({which("redis-cli"), "-h", redis.address, "-p", std::to_string(redis.port), "--raw", "keys", "job1/*"},
            tmp.path + "/keys.log");
  ASSERT_TRUE(keys.wait(10));
  std::istringstream in(keys.output());
  std::set<std::string> left;
  for (std::string k; in >> k;) left.insert(k);
  for (const auto& k : left)
    EXPECT_TRUE(k == "job1/gen" || k.rfind("job1/0123456789abcdef/", 0) == 0) << "leftover key " << k;
}

TEST(GlooRendezvous, AMissingRankIsNamedAfterTheTimeout) {
  TempDir tmp;
  Proc p(with({binary("train_parallel"), "-b", "64", "--timeout", "2", "--rendezvous", "file://" + tmp.path,
               "--data-dir", mnist_dir()},
              kCommon),
         tmp.path + "/log", {{"RANK", "0"}, {"WORLD_SIZE", "3"}});
  ASSERT_TRUE(p.wait(30));
  EXPECT_EQ(p.exit_code(), 1);
  EXPECT_NE(p.output().find("2 of 2 other rank(s) did not join job 'ddp'"), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("missing: 1, 2"), std::string::npos) << p.output();
}

TEST(GlooRendezvous, BadClusterFlagsAreRejectedBeforeAnyWork) {
  TempDir tmp;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--rendezvous", "http://x"}, "is not a rendezvous URL"},
      {{"--rendezvous", "redis://h:99999/j"}, "is not a TCP port"},
      {{"--rendezvous", "file://relative"}, "absolute directory"},
      {{"--rendezvous", "file:///nonexistent-dir-xyz"}, "does not exist"},
      {{"--nnodes", "2"}, "needs --rendezvous"},
      {{"--nnodes", "2", "--node-rank", "2", "--rendezvous", "file:///tmp"}, "out of range"},
      {{"--nnodes", "2", "--rendezvous", "file:///tmp"}, "--iface NAME"},
      {{"--iface", "nosuchif0"}, "has no IPv4 address"},
      {{"--host", "192.0.2.77"}, "not an address of this machine"},
      {{"--host", "127.0.0.1", "--iface", "lo"}, "give one of them"},
      {{"--nnodes", "2", "-w", "3", "--rendezvous", "file:///tmp", "--host", "127.0.0.1"}, "split evenly"},
      {{"--backend", "nccl"}, "backend"}};
  for (const auto& [flags, phrase] : cases) {
    std::vector<std::string> argv = {binary("train_parallel"), "--data-dir", mnist_dir()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    Proc p(argv, tmp.path + "/bad.log");
    ASSERT_TRUE(p.wait(10));
    EXPECT_NE(p.exit_code(), 0) << flags[0];
    EXPECT_NE(p.output().find(phrase), std::string::npos) << flags[0] << ": " << p.output();
    EXPECT_LT(p.seconds, 3.0);
  }
}

// ---- Two machines: network namespaces joined by a veth pair (two_hosts.h) ----

// One rank on each "machine", started by train_parallel's own node launcher
// (--nnodes 2 --node-rank i), meeting through a rendezvous directory (a
// shared file system: the same machine underneath) and training over the
// veth addresses only (each side listens on its veth0 address).
TEST(TwoMachines, OneRankPerNetworkNamespaceOverAVethPair) {
  TwoHosts hosts;
  if (!hosts.error.empty()) GTEST_SKIP() << hosts.error;
  // Host a's loopback is not host b's: b reaches a's Gloo ranks only over the veth pair.
  if (!which("ping").empty()) {
    ASSERT_EQ(run_cmd(with(hosts.in(hosts.b), {which("ping"), "-c", "1", "-W", "2", "10.77.0.1"})), 0);
  }
  TempDir tmp;
  const json gloo = gloo_reference(2, tmp);
  std::vector<std::unique_ptr<Proc>> nodes;
  for (int node = 0; node < 2; ++node) {
    const std::string ns = node == 0 ? hosts.a : hosts.b;
    auto argv = with(hosts.in(ns), {binary("train_parallel"), "--nnodes", "2", "--node-rank", std::to_string(node),
                                    "--nproc-per-node", "1", "-b", "64", "--rendezvous", "file://" + tmp.path,
                                    "--job-id", "veth", "--iface", "veth0", "--data-dir", mnist_dir(),
                                    "--save-results", tmp.path + "/node" + std::to_string(node) + ".json"});
    nodes.push_back(
        std::make_unique<Proc>(with(argv, kCommon), tmp.path + "/node" + std::to_string(node) + ".log"));
  }
  for (auto& p : nodes) {
    ASSERT_TRUE(p->wait(180)) << p->output();
    EXPECT_EQ(p->exit_code(), 0) << p->output();
  }
  EXPECT_NE(nodes[1]->output().find("listening on 10.77.0.2"), std::string::npos) << nodes[1]->output();
  const json r = json::parse(read_file(tmp.path + "/node0.json"));
  EXPECT_EQ(r["world_size"], 2);
  expect_same_steps(gloo, r, 20);
}

// The same two machines meeting through a Redis server that runs on
// machine a (bound to its veth address only), each rank started by "another
// launcher" with RANK / WORLD_SIZE / LOCAL_* set, listening on --host.
TEST(TwoMachines, RedisOnOneHostRanksStartedTorchrunStyle) {
  if (which("redis-server").empty()) GTEST_SKIP() << "redis-server is not installed";
  TwoHosts hosts;
  if (!hosts.error.empty()) GTEST_SKIP() << hosts.error;
  TempDir tmp;
  RedisServer redis("10.77.0.1", tmp.path, hosts.in(hosts.a));
  ASSERT_TRUE(redis.ready(hosts.in(hosts.b))) << "redis on host a is not reachable from host b: "
                                              << read_file(redis.log);
  const json gloo = gloo_reference(2, tmp);
  std::vector<std::unique_ptr<Proc>> ranks;
  for (int r = 0; r < 2; ++r) {
    const std::string ns = r == 0 ? hosts.a : hosts.b;
    auto argv = with(hosts.in(ns), {binary("train_parallel"), "-b", "64", "--rendezvous", redis.url("veth-redis"),
                                    "--host", r == 0 ? "10.77.0.1" : "10.77.0.2", "--data-dir", mnist_dir(),
                                    "--save-results", tmp.path + "/rank" + std::to_string(r) + ".json"});
    ranks.push_back(std::make_unique<Proc>(
        with(argv, kCommon), tmp.path + "/rank" + std::to_string(r) + ".log",
        std::vector<std::pair<std::string, std::string>>{{"RANK", std::to_string(r)}, {"WORLD_SIZE", "2"},
                                                         {"LOCAL_RANK", "0"}, {"LOCAL_WORLD_SIZE", "1"},
                                                         {"DDP_JOB_SECRET", kJobSecret}}));
  }
  for (auto& p : ranks) {
    ASSERT_TRUE(p->wait(180)) << p->output();
    EXPECT_EQ(p->exit_code(), 0) << p->output();
  }
  expect_same_steps(gloo, json::parse(read_file(tmp.path + "/rank0.json")), 20);
}

// Across machines, a rank must be told which address the others reach it at.
TEST(TwoMachines, ARankOfAMultiMachineJobNeedsAnAddress) {
  TempDir tmp;
  Proc p({binary("train_parallel"), "--rendezvous", "file://" + tmp.path, "--data-dir", mnist_dir()},
         tmp.path + "/log", {{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"LOCAL_WORLD_SIZE", "1"}});
  ASSERT_TRUE(p.wait(10));
  EXPECT_EQ(p.exit_code(), 1);
  EXPECT_NE(p.output().find("spans machines"), std::string::npos) << p.output();
}

}  // namespace
