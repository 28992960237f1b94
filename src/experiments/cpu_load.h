// How much CPU other processes may take while a run runs before its timing
// is called unreliable (measured with sys::cpu_sample / sys::background_cores:
// all CPU time the kernel counted, steal included, minus ours and our
// children's).
#pragma once

namespace ddp::experiments {

// Other processes using more CPU than this (in cores) during a run make its timing unreliable.
constexpr double kBusyCores = 0.25;

}  // namespace ddp::experiments
