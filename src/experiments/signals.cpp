#include "experiments/signals.h"

#include <signal.h>

#include <atomic>

#include "sys/subprocess.h"

namespace ddp::experiments {

namespace {

// Atomic (lock-free), so that run_on_nodes can watch it from its loop.
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

void on_signal(int sig) {
  int none = 0;
  g_signal.compare_exchange_strong(none, sig);
  const pid_t child = sys::current_child();
  if (child > 0) kill(child, sig);
}

}  // namespace

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int pending_signal() { return g_signal.load(); }

const std::atomic<int>& stop_flag() { return g_signal; }

void record_signal(int sig) {
  int none = 0;
  g_signal.compare_exchange_strong(none, sig);
}

}  // namespace ddp::experiments
