#include "sys/process.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "sys/fd.h"

namespace ddp::sys {
namespace {

// The argv / envp arrays of one child, built in the parent: after fork only
// async-signal-safe calls are allowed (another thread may hold malloc's lock).
struct ExecPlan {
  std::vector<std::string> args, env;
  std::vector<char*> argv, envp;
  explicit ExecPlan(const SpawnOptions& o) : args(o.argv), env(environment_with(o.env)) {
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
};

[[noreturn]] void fail_in_child(const char* what, const char* path, int err, int code) {
  const char* reason = strerrordesc_np(err);
  write_all(STDERR_FILENO, what);
  write_all(STDERR_FILENO, path);
  write_all(STDERR_FILENO, ": ");
  write_all(STDERR_FILENO, reason ? reason : "error");
  write_all(STDERR_FILENO, "\n");
  ::_exit(code);
}

// Default actions (ignored signals survive exec) and an empty mask.
void reset_signals() {
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);  // fails harmlessly for reserved ones
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

[[noreturn]] void run_child(const SpawnOptions& o, ExecPlan& plan, pid_t parent) {
  if (o.new_process_group) ::setpgid(0, 0);
  if (o.parent_death_signal != 0) {
    ::prctl(PR_SET_PDEATHSIG, o.parent_death_signal);
    if (::getppid() != parent) ::_exit(127);  // it died before prctl
  }
  reset_signals();
  for (int fd : o.inherit_fds) ::fcntl(fd, F_SETFD, 0);
  if (o.null_stdin) {
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
  }
  if (o.stdout_fd >= 0) ::dup2(o.stdout_fd, STDOUT_FILENO);
  if (o.stderr_fd >= 0) ::dup2(o.stderr_fd, STDERR_FILENO);
  if (!o.cwd.empty() && ::chdir(o.cwd.c_str()) != 0) fail_in_child("cannot enter directory ", o.cwd.c_str(), errno, 126);
  ::execve(plan.argv[0], plan.argv.data(), plan.envp.data());
  fail_in_child("cannot execute ", plan.argv[0], errno, 127);
}

}  // namespace

pid_t spawn(const SpawnOptions& o) {
  if (o.argv.empty()) {
    errno = EINVAL;
    return -1;
  }
  ExecPlan plan(o);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) run_child(o, plan, parent);
  // Also here, so that a signal forwarded to the group right away finds it.
  if (pid > 0 && o.new_process_group) ::setpgid(pid, pid);
  return pid;
}

int exit_status_of(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string find_executable(const std::string& name) {
  if (name.empty()) return "";
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const std::string dirs = env_string("PATH", "/usr/local/bin:/usr/bin:/bin");
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t colon = dirs.find(':', start);
    if (colon == std::string::npos) colon = dirs.size();
    const std::string dir = colon > start ? dirs.substr(start, colon - start) : std::string(".");
    const std::string candidate = dir + "/" + name;
    std::error_code ec;
    if (::access(candidate.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(candidate, ec)) return candidate;
    start = colon + 1;
  }
  return "";
}

std::string self_exe() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw UserError("cannot find this program's path (/proc/self/exe)", "run it on Linux with /proc mounted");
  return std::string(buf, static_cast<size_t>(n));
}

std::string self_exe_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return ".";
  return exe.parent_path().string();
}

}  // namespace ddp::sys
