#include "train/stop.h"

#include <pthread.h>

#include <csignal>
#include <mutex>
#include <thread>

namespace ddp::train {

namespace {
volatile std::sig_atomic_t g_signal = 0;
}  // namespace

// SIGINT and SIGTERM are blocked in the calling thread, and so in every
// thread started after it (Gloo's, MPI's, OpenMP's, the gradient
// synchroniser's), and taken by one thread that only waits for them. No
// system call in a communication library is ever interrupted by a signal
// (some do not survive EINTR), and no signal lands on a thread that cannot
// handle it.
void install_stop_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread([set] {
      for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) == 0) g_signal = sig;
      }
    }).detach();
  });
}

int stop_signal() { return g_signal; }

}  // namespace ddp::train
