#include "sys/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>

#include "common/error.h"
#include "sys/process.h"

namespace ddp::sys {

namespace {

std::atomic<pid_t> g_child{0};

using Clock = std::chrono::steady_clock;

// One of the child's output streams, cut into lines.
struct Stream {
  int fd = -1;
  bool is_stderr = false;
  std::string partial;
};

// What a line finally shows: a progress bar redraws with \r and erases with
// ESC[K.
std::string as_displayed(std::string line) {
  while (!line.empty() && line.back() == '\r') line.pop_back();
  if (const size_t cr = line.rfind('\r'); cr != std::string::npos) line = line.substr(cr + 1);
  for (size_t esc; (esc = line.find("\033[K")) != std::string::npos;) line.erase(esc, 3);
  return line;
}

// Reads what `s` has; emits its complete lines, and the rest at the end of
// the stream (which closes it).
template <class Emit>
void read_lines(Stream& s, const Emit& emit) {
  char buf[4096];
  const ssize_t got = ::read(s.fd, buf, sizeof buf);
  if (got < 0 && errno == EINTR) return;
  if (got <= 0) {
    if (!s.partial.empty()) emit(s, s.partial);
    s.partial.clear();
    ::close(s.fd);
    s.fd = -1;
    return;
  }
  s.partial.append(buf, static_cast<size_t>(got));
  for (size_t nl; (nl = s.partial.find('\n')) != std::string::npos;) {
    std::string line = s.partial.substr(0, nl);
    s.partial.erase(0, nl + 1);
    emit(s, as_displayed(std::move(line)));
  }
}

// Starts the child with its output in two pipes; returns its pid and the
// pipes' read ends.
pid_t start(const ChildOptions& o, int& out_fd, int& err_fd) {
  const std::string& prog = o.argv[0];
  if (::access(prog.c_str(), X_OK) != 0)
    throw UserError("cannot run " + prog + ": " + std::strerror(errno),
                    "build the project first (scripts/build.sh), and run the programs from the build directory");
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw UserError(std::string("cannot create a pipe: ") + std::strerror(errno));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    const int e = errno;
    ::close(out[0]);
    ::close(out[1]);
    throw UserError(std::string("cannot create a pipe: ") + std::strerror(e));
  }
  SpawnOptions so;
  so.argv = o.argv;
  so.env = o.env;
  so.cwd = o.cwd;
  so.stdout_fd = out[1];
  so.stderr_fd = err[1];
  so.new_process_group = o.own_process_group;
  const pid_t pid = spawn(so);
  const int e = errno;
  ::close(out[1]);
  ::close(err[1]);
  if (pid < 0) {
    ::close(out[0]);
    ::close(err[0]);
    throw UserError("cannot start " + prog + ": " + std::strerror(e), "too many processes? try again later");
  }
  out_fd = out[0];
  err_fd = err[0];
  return pid;
}

}  // namespace

pid_t current_child() { return g_child.load(); }

ChildResult run_child(const ChildOptions& o) {
  if (o.argv.empty()) throw UserError("run_child: no program given");
  const auto t0 = Clock::now();
  Stream streams[2];
  streams[1].is_stderr = true;
  const pid_t pid = start(o, streams[0].fd, streams[1].fd);
  g_child = pid;
  if (o.on_start) o.on_start(pid);

  std::ofstream log;
  if (!o.log_path.empty()) log.open(o.log_path, std::ios::app);
  auto emit = [&](const Stream& s, const std::string& line) {
    if (log) log << (s.is_stderr ? "[stderr] " : "") << line << "\n" << std::flush;
    if (o.on_line) o.on_line(line, s.is_stderr);
  };

  int status = 0;
  bool reaped = false;
  Clock::time_point last_tick = t0, reaped_at{};
  const int timeout_ms = static_cast<int>(std::max(0.05, o.tick_s) * 1000);
  while (streams[0].fd >= 0 || streams[1].fd >= 0) {
    pollfd fds[2];
    Stream* which[2];
    int nfds = 0;
    for (auto& s : streams)
      if (s.fd >= 0) {
        fds[nfds] = {s.fd, POLLIN, 0};
        which[nfds++] = &s;
      }
    const int n = ::poll(fds, nfds, timeout_ms);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; n > 0 && i < nfds; ++i)
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) read_lines(*which[i], emit);
    const auto now = Clock::now();
    if (o.on_tick && now - last_tick >= std::chrono::duration<double>(o.tick_s)) {
      last_tick = now;
      o.on_tick();
    }
    // A grandchild may hold the pipes open after the child is gone: stop
    // reading a second after the child exited.
    if (!reaped && ::waitpid(pid, &status, WNOHANG) == pid) {
      reaped = true;
      reaped_at = now;
    }
    if (reaped && now - reaped_at > std::chrono::seconds(1)) break;
  }
  for (auto& s : streams) {
    if (s.fd < 0) continue;
    if (!s.partial.empty()) emit(s, s.partial);
    ::close(s.fd);
  }
  while (!reaped && ::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_child = 0;
  ChildResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  result.signaled = WIFSIGNALED(status);
  result.exit_status = exit_status_of(status);
  return result;
}

}  // namespace ddp::sys
