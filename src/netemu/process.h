// The one place where this room starts other programs (ip, tc, nsenter,
// and the commands run on the nodes), through sys::run_child, with the
// look-up of iproute2 in the sbin directories a user PATH may lack.
#pragma once
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace ddp::netemu {

// Path of the program `name` (searched in $PATH, then /usr/sbin and /sbin,
// where iproute2 lives but a user's PATH may not reach). Throws
// ddp::UserError naming the Debian package that provides it.
std::string program_path(const std::string& name);

// Runs argv (argv[0] a path) to its end; returns its exit status and its
// output (both streams, in order).
struct ProgramResult {
  int exit_status = -1;  // as a shell reports it: exit code, or 128 + signal
  std::string output;
};
ProgramResult run_program(const std::vector<std::string>& argv);

// Runs argv to its end, in its own process group, streaming its output line
// by line; `on_start` gets its pid once it exists (to signal it). The child
// gets SIGTERM if the thread that called this dies. Returns the exit status
// as run_program does.
int run_streaming(const std::vector<std::string>& argv, const std::function<void(pid_t)>& on_start,
                  const std::function<void(const std::string& line, bool is_stderr)>& on_line);

}  // namespace ddp::netemu
