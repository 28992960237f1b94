// Runs a program as a child process and streams its output line by line:
// what run_experiments uses to run the trainers and gnuplot.
#pragma once
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "sys/env.h"

namespace ddp::sys {

struct ChildOptions {
  std::vector<std::string> argv;  // argv[0]: path of the executable (no PATH search)
  std::string cwd;                // empty: inherit
  EnvVars env;                    // added to (or replacing in) ours
  std::string log_path;           // empty: none; else every line of both streams goes here too
  // Called for every complete line (without the newline); is_stderr tells the stream.
  std::function<void(const std::string& line, bool is_stderr)> on_line;
  // Called once the child exists, with its pid (e.g. to signal it later).
  std::function<void(pid_t)> on_start;
  // Called about every tick_s seconds (at least 0.05) while the child runs.
  std::function<void()> on_tick;
  double tick_s = 0.5;
  // The child runs in its own process group (so a terminal's Ctrl-C reaches
  // only us, and we forward it once), and gets SIGTERM if we die.
  bool own_process_group = true;
};

struct ChildResult {
  int exit_status = -1;  // as a shell reports it: exit code, or 128 + signal
  bool signaled = false;
  double seconds = 0;    // wall time from start to reaping
};

// Throws ddp::UserError when the program cannot be started (not found, not
// executable, no pipe, fork failed). A program that starts and fails is a
// result (exit_status != 0), not an exception.
ChildResult run_child(const ChildOptions& options);

// The pid of the child run_child is waiting for (0 when none): a signal
// handler may forward signals to it with kill().
pid_t current_child();

}  // namespace ddp::sys
