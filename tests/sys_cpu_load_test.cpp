// The CPU load readings (src/sys/cpu_load.h). Cases that change affinity or
// scheduling run in a forked child.
#include <gtest/gtest.h>
#include <sched.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "sys/cores.h"
#include "sys/cpu_load.h"
#include "test_util.h"

using ddp::sys::bind_to_cores;
using test_util::in_child;

// Time spent ready to run but without a core, as the kernel counts it.
TEST(RunnableWait, CountsTimeWithoutACoreButNotTimeAsleepOrRunning) {
  if (ddp::sys::runnable_wait_seconds() < 0) GTEST_SKIP() << "this kernel keeps no schedstat";
  const auto spin = [](double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
    }
  };
  // Two busy threads on one core take turns: each waits about half the time.
  EXPECT_EQ(in_child([&] {
              if (bind_to_cores(0, 1, 1).rfind("none", 0) == 0) return 90;
              const double before = ddp::sys::runnable_wait_seconds();
              std::thread rival([&] { spin(0.4); });
              spin(0.3);
              const double waited = ddp::sys::runnable_wait_seconds() - before;
              rival.join();
              return waited >= 0.075 ? 0 : 1;
            }),
            0);
  // Asleep is not waiting for a core.
  EXPECT_EQ(in_child([] {
              const double before = ddp::sys::runnable_wait_seconds();
              std::this_thread::sleep_for(std::chrono::milliseconds(200));
              return ddp::sys::runnable_wait_seconds() - before < 0.05 ? 0 : 1;
            }),
            0);
  // Running at real-time priority on a core of its own, a thread is never
  // made to wait for it (needs root or CAP_SYS_NICE; skipped otherwise).
  const int rt = in_child([&] {
    sched_param p{};
    p.sched_priority = 1;
    if (::sched_setscheduler(0, SCHED_FIFO, &p) != 0) return 90;
    const double before = ddp::sys::runnable_wait_seconds();
    spin(0.2);
    return ddp::sys::runnable_wait_seconds() - before < 0.02 ? 0 : 1;
  });
  if (rt != 90) {
    EXPECT_EQ(rt, 0);
  }
}

TEST(CpuLoad, MachineAndOwnTimesGrowWhileWeSpin) {
  const ddp::sys::CpuSample a = ddp::sys::cpu_sample();
  ASSERT_TRUE(std::isfinite(a.machine.busy_s)) << "no /proc/stat";
  EXPECT_TRUE(std::isfinite(a.machine.idle_s));
  // Spin until we have used 0.2 s of CPU (however long a busy machine takes to give it).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (ddp::sys::own_cpu_seconds() - a.own_s < 0.2 && std::chrono::steady_clock::now() < give_up) {
  }
  const ddp::sys::CpuSample b = ddp::sys::cpu_sample();
  EXPECT_GE(b.own_s - a.own_s, 0.2);
  EXPECT_GE(b.machine.busy_s - a.machine.busy_s, 0.15);  // our spinning counts as the machine's (10 ms ticks)
  const double others = ddp::sys::background_cores(a, b);
  EXPECT_TRUE(std::isfinite(others));
  EXPECT_GE(others, 0.0);
  EXPECT_GE(ddp::sys::load_average(), 0.0);
}

TEST(CpuLoad, BackgroundCoresIsNanWithoutAReadingOrTime) {
  ddp::sys::CpuSample a = ddp::sys::cpu_sample(), b = a;
  EXPECT_TRUE(std::isnan(ddp::sys::background_cores(a, b)));  // no time passed
  b.t = a.t + std::chrono::seconds(1);
  b.machine.busy_s = a.machine.busy_s + 3.0;
  b.own_s = a.own_s + 1.0;
  EXPECT_DOUBLE_EQ(ddp::sys::background_cores(a, b), 2.0);  // 3 busy - 1 ours over 1 s
  b.own_s = a.own_s + 5.0;
  EXPECT_DOUBLE_EQ(ddp::sys::background_cores(a, b), 0.0);  // never below 0
  b.machine.busy_s = NAN;
  EXPECT_TRUE(std::isnan(ddp::sys::background_cores(a, b)));
}
