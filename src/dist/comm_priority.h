// Communication must not wait for compute. On a machine whose cores are all
// busy computing, the threads that move gradients (the gradient
// synchroniser's thread, Gloo's event loop) only get a core when the
// scheduler preempts a compute thread; every message of an all-reduce then
// waits a scheduler tick, and an all-reduce takes many times as long as it
// would on an idle machine (docs/performance.md). Giving those
// threads priority makes each wake-up immediate; they use little CPU.
//
// Priority alone has a trap. Gloo's event loop only try-locks a connection
// before it reads from it, and epoll keeps reporting the unread bytes: while
// another thread holds the lock, the loop spins. If that thread has a lower
// priority and shares the loop's core, it never gets to release the lock
// (stalls at the end of an epoch, with the CPU burnt in the kernel). Hence
// two more rules:
//  - every thread that calls into Gloo runs at the same real-time priority
//    while it does (CommCallPriority), so the loop waits for it instead of
//    preempting it;
//  - each rank is bound to its own core(s) (sys::bind_to_cores), so its
//    communication threads share a core only with its own compute, and the
//    equal-priority loop and caller take turns instead of spinning on two
//    cores at once.
#pragma once
#include <string>
#include <vector>

namespace ddp::dist {

// Gives every thread of this process except the calling one (the compute
// thread) priority over it: real-time SCHED_FIFO priority 1 where allowed
// (root or CAP_SYS_NICE), otherwise a nicer compute thread (nice +10 for the
// caller, inherited by the compute threads it starts later). Call it once
// the communication threads exist and before any other compute thread does.
// Returns what it did, for the log ("realtime", "nice", or "none: <why>").
// Threads that the favoured ones start later do not inherit the priority
// (SCHED_RESET_ON_FORK): a library's polling helper thread at real-time
// priority would starve the compute thread (OpenMPI's polling helper
// threads do: docs/performance.md, "Where the threads run").
std::string prioritise_communication();
// The same for the listed threads (kernel thread ids) only: for MPI, whose
// own threads poll and must not be favoured; only the gradient
// synchroniser's thread is (dist::GradSync::thread_id()).
std::string prioritise_threads(const std::vector<int>& thread_ids);

// While alive, the calling thread runs at the communication threads'
// priority if prioritise_communication() made them real-time and it is not
// one of them; it gets its old scheduling back afterwards. Wrap every call
// into Gloo with one.
class CommCallPriority {
 public:
  CommCallPriority();
  ~CommCallPriority();
  CommCallPriority(const CommCallPriority&) = delete;
  CommCallPriority& operator=(const CommCallPriority&) = delete;

 private:
  bool raised_ = false;
};

}  // namespace ddp::dist
