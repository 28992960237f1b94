// Clean shutdown: SIGINT / SIGTERM only raise a flag; the training loop
// finishes its current step, writes a checkpoint if it can, and ends with
// exit status 128 + signal (130 / 143).
#pragma once

namespace ddp::train {

// Call first thing in main (before any thread exists: a communication
// library's threads must inherit the blocked signals). Idempotent.
void install_stop_handlers();
int stop_signal();  // 0 while no stop was asked for, else the signal number

// Thrown by the training loop once it has stopped cleanly on a signal.
struct Stopped {
  int signal;
  int epoch;              // 1-based epoch in progress
  long long step;         // steps of that epoch done
  bool checkpoint_written;
};

}  // namespace ddp::train
