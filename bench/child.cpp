#include <dirent.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "bench.h"
#include "sys/process.h"

namespace ddp::bench {
namespace {

using Clock = std::chrono::steady_clock;

// VmHWM of a process in MB, or -1 once it is gone.
double hwm_mb(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;  // kB
  return -1;
}

// The direct children of `parent` (a scan of /proc: this kernel may lack
// /proc/<pid>/task/<tid>/children).
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string s;
    std::getline(f, s);
    const auto close = s.rfind(')');  // the command name may hold spaces
    if (close == std::string::npos) continue;
    char state = 0;
    long ppid = 0;
    if (std::sscanf(s.c_str() + close + 1, " %c %ld", &state, &ppid) == 2 && ppid == parent)
      out.push_back(static_cast<pid_t>(std::atol(e->d_name)));
  }
  closedir(d);
  return out;
}

}  // namespace

ChildRun run_and_watch(const std::vector<std::string>& argv, int poll_ms) {
  ChildRun r;
  char path[] = "/tmp/ddp-bench-out-XXXXXX";
  const int out_fd = mkstemp(path);
  if (out_fd < 0) {
    r.output = "cannot create a temporary file";
    return r;
  }
  unlink(path);
  sys::SpawnOptions so;
  so.argv = argv;
  so.stdout_fd = so.stderr_fd = out_fd;
  so.null_stdin = true;
  std::fflush(nullptr);
  const auto t0 = Clock::now();
  const pid_t pid = sys::spawn(so);
  if (pid < 0) {
    close(out_fd);
    r.output = std::string("cannot start ") + argv[0] + ": " + std::strerror(errno);
    return r;
  }
  std::map<pid_t, double> kids;  // child -> last VmHWM read
  int status = 0;
  rusage usage{};
  int polls = 0;
  for (;;) {
    const pid_t got = wait4(pid, &status, WNOHANG, &usage);
    if (got == pid) break;
    if (const double h = hwm_mb(pid); h > 0) r.self_hwm_mb = h;
    // Look for the children now and then (a scan of /proc costs a little
    // CPU); read the memory of the ones known at every poll.
    if (polls++ % 10 == 0)
      for (pid_t k : children_of(pid)) kids.emplace(k, 0.0);
    for (auto& [k, mb] : kids)
      if (const double h = hwm_mb(k); h > 0) mb = std::max(mb, h);
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
  r.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  r.exit_code = sys::exit_status_of(status);
  r.tree_max_rss_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;  // kB
  for (const auto& [k, mb] : kids) r.children_hwm_mb.push_back(mb);
  // The output's tail, for error messages.
  std::string out;
  char buf[4096];
  lseek(out_fd, 0, SEEK_SET);
  for (ssize_t n; (n = read(out_fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(out_fd);
  r.output = out.size() > 4000 ? out.substr(out.size() - 4000) : out;
  return r;
}

}  // namespace ddp::bench
