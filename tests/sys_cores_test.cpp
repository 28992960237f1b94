// Core binding (src/sys/cores.h). Each case runs in a forked child, so the
// test process keeps its own affinity.
#include <gtest/gtest.h>
#include <sched.h>

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

TEST(BindToCores, EachLocalRankGetsItsOwnCoresWrappingRoundWhenOversubscribed) {
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

}  // namespace
