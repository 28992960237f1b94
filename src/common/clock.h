// The seconds between two readings of the steady clock, as the training loop
// and its timers report them.
#pragma once
#include <chrono>

namespace ddp {

inline double seconds(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace ddp
