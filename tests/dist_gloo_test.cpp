// GlooCommunicator: exact collectives across real processes at every world
// size 1..8, both all-reduce algorithms; options from the environment;
// failures become UserError.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "common/error.h"
#include "dist/gloo_communicator.h"
#include "dist/launcher.h"
#include "dist_test_util.h"
#include "sys/launch_env.h"
#include "test_util.h"

using namespace ddp;
using namespace ddp::dist;
using namespace dist_test;

extern char** environ;

namespace {

void exact_collectives(const std::string& algorithm) {
  for (int world = 1; world <= 8; ++world) {
    auto job = worker_job(world, {"collectives"});
    job.env.push_back({"DDP_GLOO_ALGORITHM", algorithm});
    EXPECT_EQ(launch_local(job), 0) << algorithm << " at world size " << world;
  }
}

using EnvGuard = test_util::ScopedEnv;

// A TCP port nobody listens on right now.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

bool port_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// A throwaway redis-server on a free port (stopped on destruction).
struct RedisServer {
  pid_t pid = -1;
  int port = -1;
  RedisServer() {
    port = free_port();
    std::string p = std::to_string(port);
    std::vector<std::string> a = {"/usr/bin/redis-server", "--port", p, "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no"};
    std::vector<char*> argv;
    for (auto& x : a) argv.push_back(x.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; pid > 0 && i < 500 && !port_accepts(port); ++i) usleep(10000);
  }
  ~RedisServer() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

void set_valid_env(EnvGuard& env) {
  env.set("RANK", "1");
  env.set("WORLD_SIZE", "4");
  env.set("DDP_RENDEZVOUS_DIR", "/tmp");
  env.set("DDP_JOB_ID", "job-42");
  env.set("DDP_GLOO_HOST", nullptr);
  env.set("DDP_GLOO_TIMEOUT_S", nullptr);
  env.set("DDP_GLOO_ALGORITHM", nullptr);
  env.set("DDP_REDIS_HOST", nullptr);
  env.set("DDP_REDIS_PORT", nullptr);
}

}  // namespace

TEST(GlooCollectives, RingExactSumsAndBroadcastAtWorldSizes1To8) { exact_collectives("ring"); }

TEST(GlooCollectives, BcubeExactSumsAndBroadcastAtWorldSizes1To8) { exact_collectives("bcube"); }

// Across machines the store can be a Redis server instead of a directory.
TEST(GlooCollectives, RedisStoreRendezvous) {
  if (::access("/usr/bin/redis-server", X_OK) != 0) GTEST_SKIP() << "no redis-server";
  RedisServer redis;
  ASSERT_GT(redis.pid, 0);
  ASSERT_TRUE(port_accepts(redis.port)) << "redis-server did not start";
  auto job = worker_job(3, {"collectives"});
  job.env.push_back({"DDP_REDIS_HOST", "127.0.0.1"});
  job.env.push_back({"DDP_REDIS_PORT", std::to_string(redis.port)});
  EXPECT_EQ(launch_local(job), 0);
}

TEST(GlooCommunicator, UnreachableRedisIsAUserError) {
  GlooOptions o;
  o.size = 2;
  o.rank = 0;
  o.prefix = "p";
  o.redis_host = "127.0.0.1";
  o.redis_port = free_port();
  o.secret = "a-job-secret-of-32-bytes-or-so..";  // a Redis store needs one
  try {
    make_gloo_communicator(o);
    ADD_FAILURE() << "connected to a Redis server that does not exist";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("Redis 127.0.0.1:"), std::string::npos) << e.what();
  }
}

TEST(GlooOptionsFromEnv, RedisReplacesTheRendezvousDirectory) {
  EnvGuard env;
  set_valid_env(env);
  env.set("DDP_RENDEZVOUS_DIR", nullptr);
  env.set("DDP_REDIS_HOST", "10.0.0.1");
  env.set("DDP_REDIS_PORT", "7000");
  GlooOptions o = gloo_options_from_env();
  EXPECT_EQ(o.redis_host, "10.0.0.1");
  EXPECT_EQ(o.redis_port, 7000);
  env.set("DDP_REDIS_PORT", "70000");
  EXPECT_THROW(gloo_options_from_env(), UserError);
}

TEST(GlooOptionsFromEnv, ReadsTheLauncherVariables) {
  EnvGuard env;
  set_valid_env(env);
  env.set("DDP_GLOO_TIMEOUT_S", "2.5");
  env.set("DDP_GLOO_ALGORITHM", "bcube");
  env.set("DDP_GLOO_HOST", "localhost");
  GlooOptions o = gloo_options_from_env();
  EXPECT_EQ(o.rank, 1);
  EXPECT_EQ(o.size, 4);
  EXPECT_EQ(o.rendezvous_dir, "/tmp");
  EXPECT_EQ(o.prefix, "job-42");
  EXPECT_EQ(o.timeout.count(), 2500);
  EXPECT_EQ(o.algorithm, "bcube");
  EXPECT_EQ(o.host, "localhost");
  EXPECT_TRUE(sys::launched_by_launcher());
}

TEST(GlooOptionsFromEnv, DefaultsForOptionalVariables) {
  EnvGuard env;
  set_valid_env(env);
  GlooOptions o = gloo_options_from_env();
  EXPECT_EQ(o.timeout.count(), 60000);
  EXPECT_EQ(o.host, "127.0.0.1");
  EXPECT_EQ(o.algorithm, GlooOptions{}.algorithm);
}

TEST(GlooOptionsFromEnv, MissingOrInvalidVariablesAreUserErrors) {
  const char* required[] = {"RANK", "WORLD_SIZE", "DDP_RENDEZVOUS_DIR", "DDP_JOB_ID"};
  for (const char* k : required) {
    EnvGuard env;
    set_valid_env(env);
    env.set(k, nullptr);
    try {
      gloo_options_from_env();
      ADD_FAILURE() << "no error without " << k;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(k), std::string::npos) << e.what();
      EXPECT_FALSE(e.hint().empty());
    }
  }
  struct Bad {
    const char* k;
    const char* v;
  } bad[] = {{"RANK", "x"},         {"RANK", "-1"},          {"RANK", "4"},
             {"WORLD_SIZE", "0"},   {"WORLD_SIZE", "2x"},    {"DDP_GLOO_TIMEOUT_S", "0"},
             {"DDP_GLOO_TIMEOUT_S", "abc"}, {"DDP_GLOO_ALGORITHM", "tree"}};
  for (auto b : bad) {
    EnvGuard env;
    set_valid_env(env);
    env.set(b.k, b.v);
    EXPECT_THROW(gloo_options_from_env(), UserError) << b.k << "=" << b.v;
  }
}

TEST(GlooCommunicator, WorldOfOneInProcess) {
  TempDir dir;
  GlooOptions o;
  o.rank = 0;
  o.size = 1;
  o.rendezvous_dir = dir.path;
  o.prefix = "solo";
  auto comm = make_gloo_communicator(o);
  EXPECT_EQ(comm->backend(), "gloo");
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  std::vector<float> f = {1, -2, 3.5f};
  std::vector<double> d = {4, 5};
  comm->allreduce_sum(f.data(), f.size());
  comm->allreduce_sum(d.data(), d.size());
  comm->broadcast(f.data(), f.size(), 0);
  comm->barrier();
  EXPECT_EQ(f, (std::vector<float>{1, -2, 3.5f}));
  EXPECT_EQ(d, (std::vector<double>{4, 5}));
  EXPECT_THROW(comm->broadcast(f.data(), f.size(), 1), UserError);
}

TEST(GlooCommunicator, BadOptionsAreUserErrors) {
  TempDir dir;
  GlooOptions o;
  o.size = 2;
  o.rank = 0;
  o.rendezvous_dir = dir.path;
  o.prefix = "p";
  o.algorithm = "halving-doubling";
  EXPECT_THROW(make_gloo_communicator(o), UserError);
  o.algorithm = "ring";
  o.rendezvous_dir = dir.path + "/does-not-exist";
  EXPECT_THROW(make_gloo_communicator(o), UserError);
  o.rendezvous_dir = dir.path;
  o.rank = 2;
  EXPECT_THROW(make_gloo_communicator(o), UserError);
}

// A peer that never arrives: the rendezvous gives up after OUR timeout (not
// the store's fixed 30 s), with a UserError naming this rank.
TEST(GlooCommunicator, RendezvousWithAMissingPeerTimesOut) {
  TempDir dir;
  GlooOptions o;
  o.size = 2;
  o.rank = 1;  // rank 0 never comes
  o.rendezvous_dir = dir.path;
  o.prefix = "lonely";
  o.timeout = std::chrono::milliseconds(1000);
  auto t0 = std::chrono::steady_clock::now();
  try {
    make_gloo_communicator(o);
    ADD_FAILURE() << "rendezvous succeeded without rank 0";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1"), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_LT(seconds_since(t0), 5.0);
}

// One rank hangs (sleeps forever) while the others wait for it in an
// all-reduce: they time out after DDP_GLOO_TIMEOUT_S with a UserError, exit
// non-zero, and the launcher stops the hung rank.
TEST(GlooFaults, HungPeerMakesTheOthersTimeOut) {
  TempDir out;
  auto job = worker_job(3, {"hang", "1"}, out.path);
  job.env.push_back({"DDP_GLOO_TIMEOUT_S", "2"});
  job.grace_s = 1;
  testing::internal::CaptureStderr();
  auto t0 = std::chrono::steady_clock::now();
  int rc = launch_local(job);
  double took = seconds_since(t0);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 1) << err;
  EXPECT_GE(took, 1.5);
  EXPECT_LT(took, 10.0);
  EXPECT_NE(err.find("lost contact with a peer during all-reduce"), std::string::npos) << err;
  EXPECT_NE(err.find("timed out after 2 s"), std::string::npos) << err;
  EXPECT_NE(err.find("exited with status 1"), std::string::npos) << err;
  for (auto& info : read_infos(out.path, 3)) {
    ASSERT_GT(info.pid, 0);
    EXPECT_TRUE(process_gone(info.pid));
    EXPECT_FALSE(dir_exists(info.rendezvous_dir));
  }
}
