// The priority of threads that call into Gloo (src/dist/comm_priority.h).
// Each case runs in a forked child, so the test process keeps its own
// scheduling. (Core binding: sys_cores_test.cpp.)
#include <gtest/gtest.h>
#include <sched.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "dist/comm_priority.h"
#include "test_util.h"

namespace {

using test_util::in_child;

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

