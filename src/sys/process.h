// Starting programs (fork + exec with an environment), finding them, and
// describing how they ended. The supervision around a child (what to wait
// for, what to read, what to forward) stays with each caller: the local
// launcher (dist/launcher.h), mpirun's (dist/mpi_launch.h), run_child
// (sys/subprocess.h) and the benchmark's memory watcher.
#pragma once
#include <sys/types.h>

#include <csignal>
#include <string>
#include <vector>

#include "sys/env.h"

namespace ddp::sys {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0]: path of the executable (no PATH search: see find_executable)
  EnvVars env;                    // added to (or replacing in) this process's environment
  std::string cwd;                // empty: inherit
  // Descriptors that become the child's standard output / error (-1:
  // inherit ours); the same one may be given for both.
  int stdout_fd = -1, stderr_fd = -1;
  bool null_stdin = false;        // read /dev/null instead of our standard input
  // Its own process group, so that a terminal's Ctrl-C reaches only the
  // parent, which decides what to forward.
  bool new_process_group = false;
  // Sent to the child when the thread that spawned it ends (PR_SET_PDEATHSIG;
  // 0: none). A child whose parent is already gone does not start.
  int parent_death_signal = SIGTERM;
  // Descriptors the program keeps across exec (their close-on-exec flag is
  // cleared in the child only); every other one keeps its own flag.
  std::vector<int> inherit_fds;
};

// Starts the program; everything the child needs is built before fork, so
// it is safe to call with other threads running. The child starts with
// every signal at its default action and an empty signal mask (ignored
// signals and the mask would otherwise survive exec). Returns the child's
// pid, or -1 with errno set when fork fails (EAGAIN: the process limit).
// When exec fails the child writes "cannot execute PATH: REASON" to its
// standard error and exits with 127 (126: cannot enter cwd).
pid_t spawn(const SpawnOptions& options);

// A wait status as a shell reports it: the exit code, or 128 + the signal
// number for a child killed by a signal; -1 for anything else.
int exit_status_of(int wait_status);

// "SIGKILL" for 9, or "signal N" for a number without a name.
std::string signal_name(int sig);

// The full path of the executable `name`: searched in $PATH (an empty entry
// is the current directory) unless it contains '/', in which case it is
// returned as is when executable. "" when there is none.
std::string find_executable(const std::string& name);

// The path of the running executable (/proc/self/exe). Throws
// ddp::UserError when it cannot be read (no /proc).
std::string self_exe();
// Its directory; "." when it cannot be read.
std::string self_exe_dir();

}  // namespace ddp::sys
