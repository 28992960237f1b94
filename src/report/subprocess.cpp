#include "report/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"

namespace ddp::report {

namespace {

std::atomic<pid_t> g_child{0};

using Clock = std::chrono::steady_clock;

struct Stream {
  int fd = -1;
  bool is_stderr = false;
  std::string partial;
};

}  // namespace

pid_t current_child() { return g_child.load(); }

std::string find_in_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    const std::string dir = end > start ? p.substr(start, end - start) : std::string(".");
    const std::string candidate = dir + "/" + name;
    std::error_code ec;
    if (access(candidate.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(candidate, ec)) return candidate;
    start = end + 1;
  }
  return "";
}

std::string self_exe_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return ".";
  return exe.parent_path().string();
}

ChildResult run_child(const ChildOptions& o) {
  if (o.argv.empty()) throw UserError("run_child: no program given");
  const std::string& prog = o.argv[0];
  if (access(prog.c_str(), X_OK) != 0)
    throw UserError("cannot run " + prog + ": " + std::strerror(errno),
                    "build the project first (scripts/build.sh), and run the programs from the build directory");

  // Everything the child needs is prepared before fork (only async-signal-safe calls after it).
  std::vector<char*> argv;
  for (const auto& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    bool replaced = false;
    for (const auto& [k, v] : o.env) replaced = replaced || k == key;
    if (!replaced) env_strings.push_back(kv);
  }
  for (const auto& [k, v] : o.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
    throw UserError(std::string("cannot create a pipe: ") + std::strerror(errno));
  const pid_t parent = getpid();
  const auto start = Clock::now();
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    for (int fd : {out[0], out[1], err[0], err[1]}) close(fd);
    throw UserError("cannot start " + prog + ": " + std::strerror(e), "too many processes? try again later");
  }
  if (pid == 0) {
    if (o.own_process_group) setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(129);  // the parent died before prctl
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD}) signal(s, SIG_DFL);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    if (!o.cwd.empty() && chdir(o.cwd.c_str()) != 0) _exit(126);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  if (o.own_process_group) setpgid(pid, pid);  // also here: no race with a signal we forward
  g_child = pid;
  if (o.on_start) o.on_start(pid);
  close(out[1]);
  close(err[1]);

  std::ofstream log;
  if (!o.log_path.empty()) log.open(o.log_path, std::ios::app);
  Stream streams[2] = {{out[0], false, {}}, {err[0], true, {}}};
  auto emit = [&](Stream& s, const std::string& line) {
    if (log) log << (s.is_stderr ? "[stderr] " : "") << line << "\n" << std::flush;
    if (o.on_line) o.on_line(line, s.is_stderr);
  };

  ChildResult result;
  int status = 0;
  bool reaped = false;
  Clock::time_point last_tick = start, reaped_at{};
  char buf[4096];
  while (streams[0].fd >= 0 || streams[1].fd >= 0) {
    pollfd fds[2];
    int nfds = 0;
    Stream* which[2];
    for (auto& s : streams)
      if (s.fd >= 0) {
        fds[nfds] = {s.fd, POLLIN, 0};
        which[nfds++] = &s;
      }
    const int timeout_ms = static_cast<int>(std::max(0.05, o.tick_s) * 1000);
    const int n = poll(fds, nfds, timeout_ms);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; n > 0 && i < nfds; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Stream& s = *which[i];
      const ssize_t got = read(s.fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        if (!s.partial.empty()) emit(s, s.partial);
        s.partial.clear();
        close(s.fd);
        s.fd = -1;
        continue;
      }
      s.partial.append(buf, static_cast<size_t>(got));
      for (size_t nl; (nl = s.partial.find('\n')) != std::string::npos;) {
        std::string line = s.partial.substr(0, nl);
        s.partial.erase(0, nl + 1);
        // A progress bar redraws with \r: keep what the line finally shows.
        while (!line.empty() && line.back() == '\r') line.pop_back();
        if (const size_t cr = line.rfind('\r'); cr != std::string::npos) line = line.substr(cr + 1);
        for (size_t esc; (esc = line.find("\033[K")) != std::string::npos;) line.erase(esc, 3);
        emit(s, line);
      }
    }
    const auto now = Clock::now();
    if (o.on_tick && now - last_tick >= std::chrono::duration<double>(o.tick_s)) {
      last_tick = now;
      o.on_tick();
    }
    // A grandchild may hold the pipes open after the child is gone: stop
    // reading a second after the child exited.
    if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
      reaped = true;
      reaped_at = now;
    }
    if (reaped && now - reaped_at > std::chrono::seconds(1)) break;
  }
  for (auto& s : streams) {
    if (s.fd < 0) continue;
    if (!s.partial.empty()) emit(s, s.partial);
    close(s.fd);
  }
  if (!reaped) {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  g_child = 0;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (WIFEXITED(status)) {
    result.exit_status = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signaled = true;
    result.exit_status = 128 + WTERMSIG(status);
  }
  return result;
}

}  // namespace ddp::report
