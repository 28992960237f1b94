// Core binding (src/sys/cores.h). Each case runs in a forked child, so the
// test process keeps its own affinity.
#include <gtest/gtest.h>
#include <sched.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sys/cores.h"
#include "test_util.h"

namespace {

using ddp::sys::bind_to_cores;
using test_util::in_child;

std::vector<int> affinity() {
  cpu_set_t s;
  CPU_ZERO(&s);
  sched_getaffinity(0, sizeof s, &s);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &s)) cpus.push_back(c);
  return cpus;
}

// Claims go to a directory of the test's own, away from jobs running meanwhile.
struct PrivateClaims {
  std::string dir;
  test_util::ScopedEnv env;
  PrivateClaims() {
    std::string t = std::filesystem::temp_directory_path().string() + "/claims-XXXXXX";
    dir = ::mkdtemp(t.data()) ? t : "";
    env.set("DDP_CORE_CLAIM_DIR", dir.c_str());
  }
  ~PrivateClaims() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

TEST(BindToCores, EachLocalRankGetsItsOwnCoresWrappingRoundWhenOversubscribed) {
  PrivateClaims claims;
  const auto cpus = affinity();
  if (cpus.size() < 2) GTEST_SKIP() << "needs at least 2 usable cores";
  const int n = static_cast<int>(cpus.size());
  for (int rank = 0; rank < 2 * n; ++rank) {
    EXPECT_EQ(in_child([&] {
                const auto said = bind_to_cores(rank, 2 * n, 1);
                const auto now = affinity();
                CHILD_CHECK(now.size() == 1);
                CHILD_CHECK(now[0] == cpus[static_cast<size_t>(rank % n)]);
                CHILD_CHECK(said == "core " + std::to_string(now[0]));
                // Threads started afterwards inherit the binding.
                std::vector<int> seen;
                std::thread([&] { seen = affinity(); }).join();
                CHILD_CHECK(seen == now);
                return 0;
              }),
              0)
        << "local rank " << rank;
  }
  // Two threads per rank: rank 0 takes the first two usable cores.
  EXPECT_EQ(in_child([&] {
              const auto said = bind_to_cores(0, 1, 2);
              CHILD_CHECK(affinity() == std::vector<int>(cpus.begin(), cpus.begin() + 2));
              CHILD_CHECK(said.rfind("cores ", 0) == 0);
              return 0;
            }),
            0);
}

TEST(BindToCores, KeepsToTheCoresItIsAllowedAndRefusesNonsense) {
  PrivateClaims claims;
  const auto cpus = affinity();
  if (cpus.size() < 2) GTEST_SKIP() << "needs at least 2 usable cores";
  // Narrowed to one core (as taskset or a cgroup would): nothing to choose.
  EXPECT_EQ(in_child([&] {
              cpu_set_t one;
              CPU_ZERO(&one);
              CPU_SET(cpus.back(), &one);
              sched_setaffinity(0, sizeof one, &one);
              CHILD_CHECK(bind_to_cores(0, 2, 1) == "none: a single core");
              CHILD_CHECK(affinity() == std::vector<int>{cpus.back()});
              return 0;
            }),
            0);
  EXPECT_EQ(in_child([&] {
              CHILD_CHECK(bind_to_cores(-1, 2, 1).rfind("none", 0) == 0);
              CHILD_CHECK(bind_to_cores(2, 2, 1).rfind("none", 0) == 0);
              CHILD_CHECK(bind_to_cores(0, 0, 1).rfind("none", 0) == 0);
              CHILD_CHECK(affinity() == cpus);  // untouched
              return 0;
            }),
            0);
}

// One job's only rank in a process of its own, narrowed first to `mask` (as
// taskset would): it binds, reports, and holds its claim until destroyed.
struct Job {
  pid_t pid = -1;
  int to_child = -1;
  std::string said, sharing;
  explicit Job(const std::vector<int>& mask) {
    int down[2], up[2];
    if (::pipe(down) != 0 || ::pipe(up) != 0) return;
    pid = ::fork();
    if (pid == 0) {
      ::close(down[1]);
      ::close(up[0]);
      cpu_set_t set;
      CPU_ZERO(&set);
      for (int c : mask) CPU_SET(c, &set);
      ::sched_setaffinity(0, sizeof set, &set);
      std::string note;
      const std::string text = bind_to_cores(0, 1, 1, &note) + "\n" + note + "\n";
      if (::write(up[1], text.data(), text.size()) < 0) ::_exit(1);
      char c;
      while (::read(down[0], &c, 1) > 0) {
      }
      ::_exit(0);
    }
    ::close(down[0]);
    ::close(up[1]);
    to_child = down[1];
    std::string got;
    char buf[512];
    ssize_t n;
    while (std::count(got.begin(), got.end(), '\n') < 2 && (n = ::read(up[0], buf, sizeof buf)) > 0) got.append(buf, n);
    ::close(up[0]);
    const auto nl = got.find('\n');
    said = got.substr(0, nl);
    if (nl != std::string::npos) sharing = got.substr(nl + 1, got.find('\n', nl + 1) - nl - 1);
  }
  ~Job() {
    if (to_child >= 0) ::close(to_child);
    if (pid > 0) ::waitpid(pid, nullptr, 0);
  }
};

// Fault 6 of issue 20: two jobs started side by side both took core 0 and
// left core 1 idle. Now the second takes the other core of the two it may
// use, and a third, finding none free, shares one and says so.
TEST(BindToCores, JobsSideBySideTakeDisjointCoresAndOneTooManySharesAndSaysSo) {
  PrivateClaims claims;
  const auto cpus = affinity();
  if (cpus.size() < 2) GTEST_SKIP() << "needs at least 2 usable cores";
  const std::vector<int> mask = {cpus[0], cpus[1]};  // the user's mask: only these may be chosen
  const std::set<std::string> allowed = {"core " + std::to_string(mask[0]), "core " + std::to_string(mask[1])};
  {
    Job a(mask);
    Job b(mask);
    EXPECT_TRUE(allowed.count(a.said)) << a.said;
    EXPECT_TRUE(allowed.count(b.said)) << b.said;
    EXPECT_NE(a.said, b.said) << "two jobs bound to the same core";
    EXPECT_EQ(a.sharing, "");
    EXPECT_EQ(b.sharing, "");
    Job c(mask);
    EXPECT_TRUE(allowed.count(c.said)) << c.said;
    EXPECT_NE(c.sharing.find("shares " + c.said + " with 1 other process"), std::string::npos) << c.sharing;
    EXPECT_EQ(std::count(c.sharing.begin(), c.sharing.end(), '\n'), 0);  // one line
  }
  // Claims end with their process: alone again, a job shares nothing.
  Job d(mask);
  EXPECT_EQ(d.sharing, "");
  Job e({mask[0]});  // narrowed to one core: nothing to choose, nothing claimed
  EXPECT_EQ(e.said, "none: a single core");
}

}  // namespace
