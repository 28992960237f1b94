// Communication must not wait for compute. On a machine whose cores are all
// busy computing, the threads that move gradients (the gradient
// synchroniser's thread, Gloo's event loop) only get a core when the
// scheduler preempts a compute thread; every message of an all-reduce then
// waits a scheduler tick, and a 1 ms all-reduce takes 10-20 ms. Giving those
// threads priority makes each wake-up immediate; they use little CPU.
#pragma once
#include <string>

namespace ddp::dist {

// Gives every thread of this process except the calling one (the compute
// thread) priority over it: real-time SCHED_FIFO priority 1 where allowed
// (root or CAP_SYS_NICE), otherwise a nicer compute thread (nice +10 for the
// caller, inherited by the compute threads it starts later). Call it once
// the communication threads exist and before any other compute thread does.
// Returns what it did, for the log ("realtime", "nice", or "none: <why>").
std::string prioritise_communication();

}  // namespace ddp::dist
