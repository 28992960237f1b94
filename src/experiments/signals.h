// Ctrl-C and friends during the suite: SIGINT, SIGTERM and SIGHUP are
// remembered (the first one) and forwarded to the trainer that runs, so that
// the suite stops after it and still writes what it measured.
#pragma once

namespace ddp::experiments {

// Installs the handlers for SIGINT, SIGTERM, SIGHUP; ignores SIGPIPE.
void install_signal_handlers();

// The first signal received, 0 while none.
int pending_signal();

// Records `sig` as received: for a signal a child job took in our place
// (dist::launch_local handles SIGINT itself while its job runs).
void record_signal(int sig);

}  // namespace ddp::experiments
