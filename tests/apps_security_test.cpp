// train_parallel at a Redis server that wants a password, and the job
// secret, as a user meets them (issue 20; docs/security.md): a missing or
// wrong password, a missing secret and a secret file others may read are
// each one clear error within seconds; the password from a file works.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "apps_test_util.h"

using namespace apps_test;

namespace {

const char* kRedis = "/usr/bin/redis-server";
const std::string kSecret = "test-job-secret-0123456789abcdef";

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

bool accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// redis-server with a password, on a free port of 127.0.0.1; killed on destruction.
struct Redis {
  int port = free_port();
  Proc server;
  explicit Redis(const std::string& dir)
      : server({kRedis, "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--requirepass", "server-pw"},
               dir + "/redis.log") {
    for (int i = 0; i < 500 && !accepts(port); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ~Redis() {
    kill(server.pid, SIGKILL);
    server.wait(10);
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port) + "/sec"; }
};

using Env = std::vector<std::pair<std::string, std::string>>;

// Runs train_parallel with `flags` to the end; returns its output, checks it failed within seconds.
std::string fails_fast(const TempDir& tmp, std::vector<std::string> flags, const Env& env) {
  std::vector<std::string> argv = {binary("train_parallel"), "--limit", "640", "-e", "1", "--no-progress",
                                   "--data-dir", mnist_dir()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  Proc p(argv, tmp.path + "/fail.log", env);
  EXPECT_TRUE(p.wait(30));
  EXPECT_EQ(p.exit_code(), 1) << p.output();
  EXPECT_LT(p.seconds, 5.0) << p.output();
  return p.output();
}

Env rank0(Env more = {}) {
  more.insert(more.begin(), {{"RANK", "0"}, {"WORLD_SIZE", "2"}});
  return more;
}

TEST(RedisPassword, MissingWrongOrSecretlessIsOneClearErrorWithinSeconds) {
  if (access(kRedis, X_OK) != 0) GTEST_SKIP() << "redis-server is not installed";
  TempDir tmp;
  Redis redis(tmp.path);
  ASSERT_TRUE(accepts(redis.port)) << read_file(tmp.path + "/redis.log");
  // A rank started by another launcher (torchrun style).
  std::string out = fails_fast(tmp, {"--rendezvous", redis.url()}, rank0({{"DDP_JOB_SECRET", kSecret}}));
  EXPECT_NE(out.find("requires a password and none was given"), std::string::npos) << out;
  EXPECT_NE(out.find("--redis-password-file"), std::string::npos) << out;
  out = fails_fast(tmp, {"--rendezvous", redis.url()},
                   rank0({{"DDP_JOB_SECRET", kSecret}, {"DDP_REDIS_PASSWORD", "wrong"}}));
  EXPECT_NE(out.find("refused the password of the default user"), std::string::npos) << out;
  out = fails_fast(tmp, {"--rendezvous", redis.url()}, rank0({{"DDP_REDIS_PASSWORD", "server-pw"}}));
  EXPECT_NE(out.find("needs a job secret"), std::string::npos) << out;
  EXPECT_NE(out.find("--secret-file PATH"), std::string::npos) << out;
  // Nodes started by train_parallel's own launcher: refused before any rank starts.
  out = fails_fast(tmp, {"--rendezvous", redis.url(), "--nnodes", "2", "--host", "127.0.0.1"},
                   {{"DDP_REDIS_PASSWORD", "server-pw"}});
  EXPECT_NE(out.find("needs a job secret"), std::string::npos) << out;
  // A secret file others may read is no secret.
  const std::string secret = tmp.path + "/secret";
  std::ofstream(secret) << kSecret << "\n";
  chmod(secret.c_str(), 0644);
  out = fails_fast(tmp, {"--rendezvous", redis.url(), "--secret-file", secret}, rank0());
  EXPECT_NE(out.find("chmod 600 " + secret), std::string::npos) << out;
}

TEST(RedisPassword, FromAFileTheJobMeetsAndTrains) {
  if (access(kRedis, X_OK) != 0) GTEST_SKIP() << "redis-server is not installed";
  TempDir tmp;
  Redis redis(tmp.path);
  ASSERT_TRUE(accepts(redis.port)) << read_file(tmp.path + "/redis.log");
  const std::string pw = tmp.path + "/redis-pw";
  std::ofstream(pw) << "server-pw\n";
  chmod(pw.c_str(), 0600);
  // One launcher starts both ranks: it makes the job secret itself.
  Proc p({binary("train_parallel"), "-w", "2", "--limit", "640", "-e", "1", "--no-progress", "--data-dir",
          mnist_dir(), "--rendezvous", redis.url(), "--redis-password-file", pw},
         tmp.path + "/ok.log");
  ASSERT_TRUE(p.wait(120)) << p.output();
  EXPECT_EQ(p.exit_code(), 0) << p.output();
  EXPECT_EQ(p.output().find("server-pw"), std::string::npos);  // never printed
}

}  // namespace
