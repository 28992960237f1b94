// Who may write into a job's rendezvous store (issue 20, "the rendezvous's
// door"): HMAC tags on every value (dist/store_tag.h), a stranger's keys in
// a file store and in a Redis store, and Redis passwords and ACL users
// (dist/redis_auth.h) against a real redis-server started with
// --requirepass.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/error.h"
#include "dist/job_secret.h"
#include "dist/rendezvous.h"
#include "dist/rendezvous_kv.h"
#include "dist/store_tag.h"
#include "dist_test_util.h"
#include "test_util.h"

using namespace ddp;
using namespace ddp::dist;
using test_util::error_of;

extern char** environ;

namespace {

const std::string kSecret = "a-job-secret-for-the-tests-0123456789";
using Clock = std::chrono::steady_clock;

// ---- tags --------------------------------------------------------------------

TEST(StoreTags, AValueVerifiesOnlyUnderItsOwnJobGenerationAndKey) {
  const TagScope scope{kSecret, "job", "g1"};
  const std::string sealed = seal(scope, "job/g1/0", "address bytes");
  EXPECT_NE(sealed.find("address bytes"), std::string::npos);  // tagged, not encrypted
  ASSERT_TRUE(unseal(scope, "job/g1/0", sealed).has_value());
  EXPECT_EQ(*unseal(scope, "job/g1/0", sealed), "address bytes");
  // Replayed under another key, job or generation, or checked with another secret: refused.
  EXPECT_FALSE(unseal(scope, "job/g1/1", sealed));
  EXPECT_FALSE(unseal({kSecret, "job2", "g1"}, "job/g1/0", sealed));
  EXPECT_FALSE(unseal({kSecret, "job", "g2"}, "job/g1/0", sealed));
  EXPECT_FALSE(unseal({kSecret + "x", "job", "g1"}, "job/g1/0", sealed));
  // A changed value, a flipped tag bit, a cut tag, no tag: refused.
  std::string changed = sealed;
  changed.back() ^= 1;
  EXPECT_FALSE(unseal(scope, "job/g1/0", changed));
  std::string flipped = sealed;
  flipped[10] ^= 1;
  EXPECT_FALSE(unseal(scope, "job/g1/0", flipped));
  EXPECT_FALSE(unseal(scope, "job/g1/0", sealed.substr(0, 20)));
  EXPECT_FALSE(unseal(scope, "job/g1/0", "address bytes"));
  // Field boundaries count: ("ab", "c") is not ("a", "bc").
  EXPECT_FALSE(unseal({kSecret, "jo", "bg1"}, "job/g1/0", sealed));
}

TEST(StoreTags, WithoutASecretValuesArePlainAndTaggedOnesAreRefused) {
  const TagScope none{"", "job", "0"};
  EXPECT_EQ(seal(none, "k", "v"), "v");
  EXPECT_EQ(*unseal(none, "k", "v"), "v");
  EXPECT_FALSE(unseal(none, "k", seal({kSecret, "job", "0"}, "k", "v")));
  EXPECT_NE(foreign_value_text(none, "k").find("this rank has none"), std::string::npos);
  EXPECT_NE(foreign_value_text({kSecret, "job", "0"}, "k").find("someone else wrote into job 'job''s keys"),
            std::string::npos);
}

TEST(JobSecret, ComesFromAPrivateFileOrTheEnvironmentNeverShort) {
  dist_test::TempDir tmp;
  test_util::ScopedEnv env;
  env.set(kJobSecretVar, nullptr);
  EXPECT_EQ(job_secret(""), "");
  env.set(kJobSecretVar, "short");
  EXPECT_NE(error_of([] { job_secret(""); }).find("has only 5 bytes"), std::string::npos);
  env.set(kJobSecretVar, kSecret.c_str());
  EXPECT_EQ(job_secret(""), kSecret);
  const std::string file = tmp.path + "/secret";
  dist_test::write_file(file, "from-the-file-0123456789\n");
  ::chmod(file.c_str(), 0644);
  EXPECT_NE(error_of([&] { job_secret(file); }).find("chmod 600 " + file), std::string::npos);
  ::chmod(file.c_str(), 0600);
  EXPECT_EQ(job_secret(file), "from-the-file-0123456789");  // the file wins; one newline dropped
  EXPECT_NE(error_of([&] { job_secret(tmp.path + "/none"); }).find("cannot read the job secret"), std::string::npos);
  EXPECT_EQ(new_job_secret().size(), 64u);
  EXPECT_NE(new_job_secret(), new_job_secret());
}

// ---- a stranger's keys in a file store ------------------------------------------

// Runs join_rendezvous for ranks 0..n-1 in threads (rank 0 after `delay`);
// errors in `errors`.
std::vector<GlooOptions> join_all(const RendezvousSpec& spec, int n, std::chrono::milliseconds timeout,
                                  std::chrono::milliseconds delay, std::vector<std::string>& errors) {
  std::vector<GlooOptions> out(n);
  errors.assign(n, "");
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      if (r == 0) std::this_thread::sleep_for(delay);
      GlooOptions base;
      base.rank = r;
      base.size = n;
      base.timeout = timeout;
      std::string g;
      errors[r] = error_of([&] { out[r] = join_rendezvous(spec, base, g); });
    });
  for (auto& t : threads) t.join();
  return out;
}

// Connects a Gloo job of n ranks (threads) on the options; returns each
// rank's error ("" when it connected and all-reduced).
std::vector<std::string> run_gloo(std::vector<GlooOptions> opts, std::chrono::milliseconds timeout) {
  std::vector<std::string> errors(opts.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < opts.size(); ++r)
    threads.emplace_back([&, r] {
      opts[r].timeout = timeout;
      errors[r] = error_of([&] {
        auto comm = make_gloo_communicator(opts[r]);
        float x = 1;
        comm->allreduce_sum(&x, 1);
        if (x != static_cast<float>(opts.size())) throw UserError("wrong sum");
      });
    });
  for (auto& t : threads) t.join();
  return errors;
}

TEST(StoreStranger, AForeignGenerationInAFileStoreIsIgnoredAndTheJobStillMeets) {
  dist_test::TempDir tmp;
  auto spec = parse_rendezvous("file://" + tmp.path);
  spec.job = "job";
  spec.secret = kSecret;
  // A stranger's generation (a plain value), before any rank of the job is there.
  dist_test::write_file(tmp.path + "/job.gen", "00000000deadbeef");
  std::vector<std::string> errors;
  testing::internal::CaptureStderr();
  auto opts = join_all(spec, 3, std::chrono::milliseconds(20000), std::chrono::milliseconds(300), errors);
  const std::string said = testing::internal::GetCapturedStderr();
  for (int r = 0; r < 3; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
  EXPECT_NE(opts[1].generation, "00000000deadbeef");
  EXPECT_EQ(opts[1].generation, opts[0].generation);
  EXPECT_NE(said.find("ignoring 'job/gen' in the rendezvous store: its value has no valid tag"), std::string::npos)
      << said;
  // ... and the tags it then writes verify for its own ranks.
  for (const auto& e : run_gloo(opts, std::chrono::milliseconds(20000))) EXPECT_EQ(e, "");
}

TEST(StoreStranger, AGlooKeyAStrangerWroteFirstIsOneClearErrorBeforeTheTimeout) {
  dist_test::TempDir tmp;
  auto spec = parse_rendezvous("file://" + tmp.path);
  spec.secret = kSecret;
  std::vector<std::string> errors;
  auto opts = join_all(spec, 2, std::chrono::milliseconds(20000), std::chrono::milliseconds(0), errors);
  ASSERT_EQ(errors[0] + errors[1], "");
  {  // The stranger writes rank 1's address key, untagged, through Gloo's own store.
    gloo::rendezvous::FileStore store(opts[0].rendezvous_dir);
    gloo::rendezvous::PrefixStore prefixed(opts[0].prefix, store);
    prefixed.set("1", std::vector<char>(136, 'x'));
  }
  const auto t0 = Clock::now();
  const auto errs = run_gloo(opts, std::chrono::milliseconds(5000));
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
  EXPECT_NE(errs[0].find("rank 0: the rendezvous store's key '" + opts[0].prefix +
                         "/1' holds a value without a valid tag: someone else wrote into job"),
            std::string::npos)
      << errs[0];
  EXPECT_NE(errs[1].find("rank 1: cannot write key '" + opts[1].prefix + "/1'"), std::string::npos) << errs[1];
  EXPECT_NE(errs[1].find("someone else wrote into job"), std::string::npos) << errs[1];
}

TEST(StoreStranger, ARankWithoutTheSecretIsToldSo) {
  dist_test::TempDir tmp;
  auto spec = parse_rendezvous("file://" + tmp.path);
  spec.secret = kSecret;
  std::vector<std::string> errors;
  auto opts = join_all(spec, 2, std::chrono::milliseconds(20000), std::chrono::milliseconds(0), errors);
  ASSERT_EQ(errors[0] + errors[1], "");
  opts[1].secret.clear();
  const auto errs = run_gloo(opts, std::chrono::milliseconds(3000));
  EXPECT_NE((errs[0] + errs[1]).find("give every rank the same job secret"), std::string::npos)
      << errs[0] << "\n" << errs[1];
}

// ---- Redis: passwords, ACL users, a stranger's keys -------------------------------

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// redis-server on a free port with the password "server-pw" for its default
// user and an ACL user "ddp" (password "user-pw") limited to keys "acl/*" and
// the rendezvous's commands.
struct RedisServer {
  pid_t pid = -1;
  int port = free_port();
  RedisServer() {
    std::vector<std::string> a = {"/usr/bin/redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--requirepass", "server-pw",
                                  "--user", "ddp", "on", ">user-pw", "resetkeys", "~acl/*", "-@all", "+get",
                                  "+set", "+setnx", "+exists", "+del", "+scan", "+ping"};  // as docs/security.md says
    std::vector<char*> argv;
    for (auto& x : a) argv.push_back(x.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; pid > 0 && i < 500 && !accepts(); ++i) ::usleep(10000);
  }
  bool accepts() const {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }
  ~RedisServer() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  RendezvousSpec spec(const std::string& job, const std::string& user, const std::string& password) const {
    auto s = parse_rendezvous("redis://127.0.0.1:" + std::to_string(port) + "/" + job);
    s.redis = {user, password};
    s.secret = kSecret;
    return s;
  }
};

#define NEED_REDIS()                                                                          \
  if (::access("/usr/bin/redis-server", X_OK) != 0) GTEST_SKIP() << "no redis-server";        \
  RedisServer redis;                                                                          \
  ASSERT_TRUE(redis.accepts()) << "redis-server did not start"

// The error of rank 0 joining alone, and how long it took to say it.
std::string join_error(const RendezvousSpec& spec, double& seconds) {
  GlooOptions base;
  base.size = 2;
  base.timeout = std::chrono::milliseconds(30000);
  std::string g;
  const auto t0 = Clock::now();
  const std::string e = error_of([&] { join_rendezvous(spec, base, g); });
  seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return e;
}

TEST(RedisLogin, AMissingOrWrongPasswordIsOneClearErrorWithinSeconds) {
  NEED_REDIS();
  double s = 0;
  std::string e = join_error(redis.spec("job", "", ""), s);
  EXPECT_NE(e.find("Redis 127.0.0.1:" + std::to_string(redis.port) + " requires a password and none was given"),
            std::string::npos) << e;
  EXPECT_NE(e.find("DDP_REDIS_PASSWORD"), std::string::npos) << e;
  EXPECT_LT(s, 3.0);
  e = join_error(redis.spec("job", "", "wrong"), s);
  EXPECT_NE(e.find("refused the password of the default user"), std::string::npos) << e;
  EXPECT_LT(s, 3.0);
  e = join_error(redis.spec("acl", "ddp", "wrong"), s);
  EXPECT_NE(e.find("refused the password of user 'ddp'"), std::string::npos) << e;
  e = join_error(redis.spec("job", "nobody", "user-pw"), s);
  EXPECT_NE(e.find("refused the password of user 'nobody'"), std::string::npos) << e;
  // The ACL user may touch only acl/*: another job id is refused, and named.
  e = join_error(redis.spec("other", "ddp", "user-pw"), s);
  EXPECT_NE(e.find("refused SET: NOPERM"), std::string::npos) << e;
  EXPECT_NE(e.find("ACL SETUSER"), std::string::npos) << e;
  // Gloo's own store is logged in the same way.
  GlooOptions o;
  o.size = 2;
  o.prefix = "job";
  o.redis_host = "127.0.0.1";
  o.redis_port = redis.port;
  o.secret = kSecret;
  o.redis = {"", "wrong"};
  e = error_of([&] { make_gloo_communicator(o); });
  EXPECT_NE(e.find("refused the password of the default user"), std::string::npos) << e;
  o.secret.clear();
  e = error_of([&] { make_gloo_communicator(o); });
  EXPECT_NE(e.find("needs a job secret"), std::string::npos) << e;
}

TEST(RedisLogin, APasswordForAServerWithoutOneIsRefused) {
  if (::access("/usr/bin/redis-server", X_OK) != 0) GTEST_SKIP() << "no redis-server";
  const int port = free_port();
  pid_t pid = -1;
  std::vector<std::string> a = {"/usr/bin/redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"};
  std::vector<char*> argv;
  for (auto& x : a) argv.push_back(x.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  ASSERT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  std::string e;
  for (int i = 0; i < 300; ++i) {  // until the server answers
    double s = 0;
    auto spec = parse_rendezvous("redis://127.0.0.1:" + std::to_string(port) + "/j");
    spec.redis = {"", "pw"};
    e = join_error(spec, s);
    if (e.find("cannot reach") == std::string::npos) break;
    ::usleep(10000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  EXPECT_NE(e.find("has none set"), std::string::npos) << e;
}

TEST(RedisLogin, TheRightPasswordOrAclUserMeetsAndTrains) {
  NEED_REDIS();
  for (const auto& spec : {redis.spec("job", "", "server-pw"), redis.spec("acl", "ddp", "user-pw")}) {
    std::vector<std::string> errors;
    auto opts = join_all(spec, 2, std::chrono::milliseconds(20000), std::chrono::milliseconds(0), errors);
    ASSERT_EQ(errors[0] + errors[1], "") << spec.job;
    EXPECT_EQ(opts[0].redis.password, spec.redis.password);
    for (const auto& e : run_gloo(opts, std::chrono::milliseconds(20000))) EXPECT_EQ(e, "") << spec.job;
    clear_generation(spec, opts[0].generation, 2);
  }
}

TEST(StoreStranger, ForeignKeysInARedisStoreAreIgnoredOrNamed) {
  NEED_REDIS();
  const auto spec = redis.spec("job", "", "server-pw");
  RedisKv stranger("127.0.0.1", redis.port, spec.redis);  // someone who knows the password, not the secret
  stranger.put("job/gen", "00000000deadbeef");
  std::vector<std::string> errors;
  testing::internal::CaptureStderr();
  auto opts = join_all(spec, 2, std::chrono::milliseconds(20000), std::chrono::milliseconds(300), errors);
  const std::string said = testing::internal::GetCapturedStderr();
  ASSERT_EQ(errors[0] + errors[1], "");
  EXPECT_NE(said.find("rank 1: ignoring 'job/gen'"), std::string::npos) << said;
  // Gloo's keys are written once: a stranger who writes one first stops the
  // job (docs/security.md says so), with one clear error, before the timeout.
  stranger.put(opts[0].prefix + "/1", std::string(136, 'x'));
  const auto t0 = Clock::now();
  const auto errs = run_gloo(opts, std::chrono::milliseconds(5000));
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
  EXPECT_NE(errs[0].find("holds a value without a valid tag: someone else wrote into job 'job''s keys"),
            std::string::npos) << errs[0];
  EXPECT_NE(errs[1].find("it is already there (someone else wrote into job 'job''s keys first"), std::string::npos)
      << errs[1];
}

TEST(StoreStranger, ARankThatTimesOutNamesTheForeignValuesItIgnored) {
  dist_test::TempDir tmp;
  auto spec = parse_rendezvous("file://" + tmp.path);
  spec.secret = kSecret;
  dist_test::write_file(tmp.path + "/ddp.gen", "00000000deadbeef");  // a stranger's, and no rank 0 comes
  GlooOptions base;
  base.rank = 1;
  base.size = 2;
  base.timeout = std::chrono::milliseconds(500);
  std::string g;
  testing::internal::CaptureStderr();
  const std::string e = error_of([&] { join_rendezvous(spec, base, g); });
  testing::internal::GetCapturedStderr();
  EXPECT_NE(e.find("no rank 0 has registered there"), std::string::npos) << e;
  EXPECT_NE(e.find("values without a valid tag were ignored (ddp/gen)"), std::string::npos) << e;
}

}  // namespace
