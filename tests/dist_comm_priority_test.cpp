// Core binding and the priority of threads that call into Gloo
// (src/dist/comm_priority.h). Each case runs in a forked child, so the test
// process keeps its own affinity and scheduling.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "dist/comm_priority.h"

namespace {

using ddp::dist::bind_to_cores;

std::vector<int> affinity() {
  cpu_set_t s;
  CPU_ZERO(&s);
  sched_getaffinity(0, sizeof s, &s);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &s)) cpus.push_back(c);
  return cpus;
}

// Runs body in a child; its exit status is the number of failed checks
// (gtest assertions do not cross fork), or 100 + line of the first.
int in_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}
#define CHILD_CHECK(cond)                    \
  do {                                       \
    if (!(cond)) return 100 + (__LINE__ % 100); \
  } while (0)

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

// With real-time communication threads, a compute thread that calls into
// Gloo runs at their priority for the call, and gets its own back after;
// threads that the favoured ones start are not favoured.
TEST(CommCallPriority, RaisesTheCallerOnlyWhileCommunicationThreadsAreRealTime) {
  EXPECT_EQ(in_child([] {
              // Before prioritise_communication(): nothing changes.
              {
                const ddp::dist::CommCallPriority call;
                CHILD_CHECK(sched_getscheduler(0) == SCHED_OTHER);
              }
              std::mutex m;
              std::condition_variable cv;
              bool done = false;
              int comm_policy = -1, helper_policy = -1;
              std::thread comm([&] {
                std::unique_lock<std::mutex> lock(m);
                cv.wait(lock, [&] { return done; });
                comm_policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
                // A thread the favoured one starts (as a library's helper) is not favoured.
                std::thread([&] { helper_policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK; }).join();
              });
              const auto mode = ddp::dist::prioritise_communication();
              {
                const ddp::dist::CommCallPriority call;
                if (mode == "realtime") CHILD_CHECK(sched_getscheduler(0) == SCHED_FIFO);
                else CHILD_CHECK(sched_getscheduler(0) == SCHED_OTHER);  // not permitted: nice instead
              }
              CHILD_CHECK(sched_getscheduler(0) == SCHED_OTHER);
              {
                std::lock_guard<std::mutex> lock(m);
                done = true;
              }
              cv.notify_one();
              comm.join();
              CHILD_CHECK(comm_policy == (mode == "realtime" ? SCHED_FIFO : SCHED_OTHER));
              CHILD_CHECK(helper_policy == SCHED_OTHER);
              return 0;
            }),
            0);
}

}  // namespace

TEST(RanksOnThisMachine, ReadsTheLaunchersLocalCountElseTheWholeWorld) {
  // In a child: the variables must not leak into other tests.
  EXPECT_EQ(in_child([] {
              int failed = 0;
              ::unsetenv("LOCAL_WORLD_SIZE");
              ::unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
              failed += ddp::dist::ranks_on_this_machine(8) != 8;  // one machine
              ::setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
              failed += ddp::dist::ranks_on_this_machine(8) != 2;  // mpirun across 4 machines
              ::setenv("LOCAL_WORLD_SIZE", "4", 1);
              failed += ddp::dist::ranks_on_this_machine(8) != 4;  // torchrun-style first
              ::setenv("LOCAL_WORLD_SIZE", "9", 1);
              ::setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "junk", 1);
              failed += ddp::dist::ranks_on_this_machine(8) != 8;  // more than the world, or junk: ignored
              return failed;
            }),
            0);
}

// Time spent ready to run but without a core, as the kernel counts it.
TEST(RunnableWait, CountsTimeWithoutACoreButNotTimeAsleepOrRunning) {
  if (ddp::dist::runnable_wait_seconds() < 0) GTEST_SKIP() << "this kernel keeps no schedstat";
  const auto spin = [](double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
    }
  };
  // Two busy threads on one core take turns: each waits about half the time.
  EXPECT_EQ(in_child([&] {
              if (bind_to_cores(0, 1, 1).rfind("none", 0) == 0) return 90;
              const double before = ddp::dist::runnable_wait_seconds();
              std::thread rival([&] { spin(0.4); });
              spin(0.3);
              const double waited = ddp::dist::runnable_wait_seconds() - before;
              rival.join();
              return waited >= 0.075 ? 0 : 1;
            }),
            0);
  // Asleep is not waiting for a core.
  EXPECT_EQ(in_child([] {
              const double before = ddp::dist::runnable_wait_seconds();
              std::this_thread::sleep_for(std::chrono::milliseconds(200));
              return ddp::dist::runnable_wait_seconds() - before < 0.05 ? 0 : 1;
            }),
            0);
  // Running at real-time priority on a core of its own, a thread is never
  // made to wait for it (needs root or CAP_SYS_NICE; skipped otherwise).
  const int rt = in_child([&] {
    sched_param p{};
    p.sched_priority = 1;
    if (::sched_setscheduler(0, SCHED_FIFO, &p) != 0) return 90;
    const double before = ddp::dist::runnable_wait_seconds();
    spin(0.2);
    return ddp::dist::runnable_wait_seconds() - before < 0.02 ? 0 : 1;
  });
  if (rt != 90) {
    EXPECT_EQ(rt, 0);
  }
}
