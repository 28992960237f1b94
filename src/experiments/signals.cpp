#include "experiments/signals.h"

#include <signal.h>

#include "sys/subprocess.h"

namespace ddp::experiments {

namespace {

volatile sig_atomic_t g_signal = 0;

void on_signal(int sig) {
  if (!g_signal) g_signal = sig;
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

int pending_signal() { return g_signal; }

void record_signal(int sig) {
  if (!g_signal) g_signal = sig;
}

}  // namespace ddp::experiments
