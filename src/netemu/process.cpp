#include "netemu/process.h"

#include <unistd.h>

#include "common/error.h"
#include "sys/process.h"
#include "sys/subprocess.h"

namespace ddp::netemu {

std::string program_path(const std::string& name) {
  std::string path = sys::find_executable(name);
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"})
    if (path.empty() && access((dir + name).c_str(), X_OK) == 0) path = dir + name;
  if (!path.empty()) return path;
  const bool iproute = name == "ip" || name == "tc";
  throw UserError("the program '" + name + "' was not found (needed to emulate a network)",
                  std::string("install it: apt-get install ") + (iproute ? "iproute2" : "util-linux"));
}

ProgramResult run_program(const std::vector<std::string>& argv) {
  sys::ChildOptions o;
  o.argv = argv;
  ProgramResult r;
  o.on_line = [&](const std::string& line, bool) { r.output += line + "\n"; };
  r.exit_status = sys::run_child(o).exit_status;
  return r;
}

int run_streaming(const std::vector<std::string>& argv, const std::function<void(pid_t)>& on_start,
                  const std::function<void(const std::string& line, bool is_stderr)>& on_line) {
  sys::ChildOptions o;
  o.argv = argv;
  o.on_start = on_start;
  o.on_line = on_line;
  o.own_process_group = true;
  return sys::run_child(o).exit_status;
}

}  // namespace ddp::netemu
