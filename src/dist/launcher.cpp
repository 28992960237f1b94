#include "dist/launcher.h"

#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "common/error.h"
#include "dist/job_secret.h"
#include "sys/env.h"
#include "sys/job_dir.h"
#include "sys/launch_env.h"
#include "sys/process.h"
#include "sys/random_id.h"

namespace ddp::dist {
namespace {

using Clock = std::chrono::steady_clock;

std::string base_name(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Letters, digits, '-' and '_' only (the job id becomes part of store keys).
std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  return out.empty() ? "ddp" : out;
}

// Blocks the supervision signals in this thread; restores the mask on exit.
struct MaskGuard {
  sigset_t old{};
  bool active = false;
  explicit MaskGuard(const sigset_t& set) { active = pthread_sigmask(SIG_BLOCK, &set, &old) == 0; }
  ~MaskGuard() {
    if (active) pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
};

struct Worker {
  pid_t pid = -1;
  bool running = false;
  int status = 0;
};

// A stopped rank (SIGSTOP, Ctrl-Z, a debugger) keeps SIGTERM pending until
// it continues: SIGCONT follows, so it ends now rather than at the SIGKILL.
void signal_running(std::vector<Worker>& workers, int sig) {
  for (auto& w : workers)
    if (w.running) {
      ::kill(w.pid, sig);
      if (sig != SIGKILL && sig != SIGCONT) ::kill(w.pid, SIGCONT);
    }
}

// The first running rank that is stopped (state T or t in /proc/PID/stat),
// or -1. The others time out waiting for its contribution: it is the one to
// name, not the rank whose timeout ended first.
int stopped_rank(const std::vector<Worker>& workers) {
  for (size_t r = 0; r < workers.size(); ++r) {
    if (!workers[r].running) continue;
    FILE* f = std::fopen(("/proc/" + std::to_string(workers[r].pid) + "/stat").c_str(), "r");
    if (!f) continue;
    char buf[512] = {};
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    const char* paren = std::strrchr(buf, ')');  // the command name may hold spaces and parentheses
    if (n > 0 && paren && paren[1] == ' ' && (paren[2] == 'T' || paren[2] == 't')) return static_cast<int>(r);
  }
  return -1;
}

// Reaps whatever has ended; returns the ranks that ended in this sweep.
std::vector<int> reap(std::vector<Worker>& workers, int& alive) {
  std::vector<int> ended;
  for (size_t r = 0; r < workers.size(); ++r) {
    auto& w = workers[r];
    if (!w.running) continue;
    int st = 0;
    pid_t got = ::waitpid(w.pid, &st, WNOHANG);
    if (got == w.pid || (got < 0 && errno == ECHILD)) {
      w.running = false;
      w.status = got == w.pid ? st : 0;
      --alive;
      ended.push_back(static_cast<int>(r));
    }
  }
  return ended;
}

bool failed(int status) { return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0); }

}  // namespace

int launch_local(const LaunchOptions& o) {
  if (o.world_size < 1)
    throw UserError("cannot launch " + std::to_string(o.world_size) + " ranks",
                    "the number of processes must be at least 1");
  if (o.argv.empty() || o.argv[0].empty())
    throw UserError("no program to launch", "pass the worker executable as argv[0]");
  const std::string& exe = o.argv[0];
  if (::access(exe.c_str(), X_OK) != 0)
    throw UserError("cannot execute '" + exe + "': " + std::strerror(errno),
                    "argv[0] must be the path of an executable file (no PATH search)");
  const int global = o.global_world_size > 0 ? o.global_world_size : o.world_size;
  if (o.rank_offset < 0 || o.rank_offset + o.world_size > global)
    throw UserError("ranks " + std::to_string(o.rank_offset) + ".." + std::to_string(o.rank_offset + o.world_size - 1) +
                        " do not fit in a world of " + std::to_string(global),
                    "the node's ranks must lie in [0, world size)");
  if (!(o.grace_s >= 0))
    throw UserError("negative grace period", "grace_s must be >= 0");
  const std::string name = o.job_name.empty() ? base_name(exe) : o.job_name;

  // 1. A private rendezvous directory (removed however the job ends:
  // sys/job_dir.h), a unique job id, and the job secret.
  const sys::JobDir dir(sys::env_string("TMPDIR", "/tmp"));
  const std::string& rdv_dir = dir.path();
  const std::string job_id =
      sanitize(name) + "-" + std::to_string(::getpid()) + "-" + sys::random_hex(8);
  const std::string secret = o.job_secret ? *o.job_secret : new_job_secret();

  // 2. Each worker's environment: the launcher's own variables win over the
  // caller's extra ones.
  const std::set<std::string> reserved = {sys::kRankVar,           sys::kWorldSizeVar,       sys::kLocalRankVar,
                                          sys::kLocalWorldSizeVar, sys::kRendezvousDirVar, sys::kJobIdVar,
                                          kJobSecretVar};
  const int n = o.world_size;
  auto worker_spawn = [&](int r) {
    sys::SpawnOptions so;
    so.argv = o.argv;
    for (auto& kv : o.env)
      if (!reserved.count(kv.first)) so.env.push_back(kv);
    so.env.push_back({sys::kRankVar, std::to_string(o.rank_offset + r)});
    so.env.push_back({sys::kWorldSizeVar, std::to_string(global)});
    so.env.push_back({sys::kLocalRankVar, std::to_string(r)});
    so.env.push_back({sys::kLocalWorldSizeVar, std::to_string(n)});
    so.env.push_back({sys::kRendezvousDirVar, rdv_dir});
    so.env.push_back({sys::kJobIdVar, job_id});
    so.env.push_back({kJobSecretVar, secret});  // "" clears it: a job without a secret
    so.parent_death_signal = SIGKILL;
    so.inherit_fds.push_back(dir.keep_open_fd());
    return so;
  };

  // 3. Supervision signals are taken synchronously (sigtimedwait) from here on.
  sigset_t sup;
  sigemptyset(&sup);
  sigaddset(&sup, SIGINT);
  sigaddset(&sup, SIGTERM);
  sigaddset(&sup, SIGHUP);
  sigaddset(&sup, SIGCHLD);
  MaskGuard mask_guard(sup);
  // With SIGCHLD ignored the kernel reaps children itself and their exit
  // statuses are lost: use the default disposition while the job runs.
  struct ChldGuard {
    struct sigaction old {};
    bool changed = false;
    ChldGuard() {
      if (::sigaction(SIGCHLD, nullptr, &old) == 0 && old.sa_handler == SIG_IGN &&
          !(old.sa_flags & SA_SIGINFO)) {
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        changed = ::sigaction(SIGCHLD, &dfl, nullptr) == 0;
      }
    }
    ~ChldGuard() {
      if (changed) ::sigaction(SIGCHLD, &old, nullptr);
    }
  } chld_guard;

  // 4. Start the workers.
  std::vector<Worker> workers(n);
  int alive = 0;
  int fork_errno = 0;
  for (int r = 0; r < n; ++r) {
    const pid_t pid = sys::spawn(worker_spawn(r));
    if (pid < 0) {
      fork_errno = errno;
      break;
    }
    workers[r].pid = pid;
    workers[r].running = true;
    ++alive;
  }

  // 5. Supervise.
  int interrupted = 0;  // the signal that stopped the job, if any
  int first_failure = -1;
  int result = 0;
  bool stopping = false, killed = false;
  Clock::time_point deadline{};
  auto stop_all = [&](int sig) {
    signal_running(workers, sig);
    if (!stopping) {
      stopping = true;
      deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(o.grace_s));
    }
  };
  if (fork_errno != 0) {
    std::fprintf(stderr, "%s: cannot start rank %d: %s; stopping the other ranks\n", name.c_str(),
                 o.rank_offset + alive, std::strerror(fork_errno));
    result = 1;
    first_failure = alive;
    stop_all(SIGTERM);
  }

  while (alive > 0) {
    std::vector<int> ended = reap(workers, alive);
    if (first_failure < 0 && !interrupted) {
      // Of the ranks that ended in the same sweep, blame one killed by a
      // signal first: the others most likely failed because it died.
      int blame = -1;
      for (int r : ended)
        if (failed(workers[r].status) && (blame < 0 || (WIFSIGNALED(workers[r].status) &&
                                                        !WIFSIGNALED(workers[blame].status))))
          blame = r;
      if (blame >= 0) {
        int st = workers[blame].status;
        first_failure = blame;
        if (WIFSIGNALED(st)) {
          int sig = WTERMSIG(st);
          result = 128 + sig;
          std::fprintf(stderr, "%s: rank %d was killed by signal %d (%s)%s\n", name.c_str(), o.rank_offset + blame,
                       sig, sys::signal_name(sig).c_str(),
                       alive > 0 ? "; stopping the other ranks" : "");
        } else if (const int silent = stopped_rank(workers); silent >= 0) {
          result = WEXITSTATUS(st);
          std::fprintf(stderr,
                       "%s: rank %d went silent: it is stopped (SIGSTOP, Ctrl-Z or a debugger), so rank %d timed "
                       "out waiting for it and exited with status %d; stopping the other ranks\n",
                       name.c_str(), o.rank_offset + silent, o.rank_offset + blame, result);
        } else {
          result = WEXITSTATUS(st);
          std::fprintf(stderr, "%s: rank %d exited with status %d%s\n", name.c_str(), o.rank_offset + blame,
                       result, alive > 0 ? "; stopping the other ranks" : "");
        }
        std::fflush(stderr);
        stop_all(SIGTERM);
      }
    }
    if (alive == 0) break;
    if (stopping && !killed && Clock::now() >= deadline) {
      signal_running(workers, SIGKILL);
      killed = true;
    }
    struct timespec ts = {0, 20 * 1000 * 1000};
    siginfo_t info;
    int sig = ::sigtimedwait(&sup, &info, &ts);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
      if (!interrupted) {
        interrupted = sig;
        std::fprintf(stderr, "%s: received %s; stopping all %d ranks\n", name.c_str(),
                     sys::signal_name(sig).c_str(), n);
        std::fflush(stderr);
        stop_all(sig);
      } else if (!killed) {  // asked twice: no more patience
        signal_running(workers, SIGKILL);
        killed = true;
      }
    }
  }

  // Take any supervision signal that arrived at the very end, so restoring
  // the mask does not deliver it after the cleanup decision.
  for (;;) {
    struct timespec zero = {0, 0};
    int sig = ::sigtimedwait(&sup, nullptr, &zero);
    if (sig <= 0) break;
    if (sig != SIGCHLD && !interrupted) interrupted = sig;
  }

  if (fork_errno != 0 && !interrupted)
    throw UserError(name + ": cannot start " + std::to_string(n) + " processes: " +
                        std::strerror(fork_errno),
                    "use fewer processes or raise the process limit (ulimit -u)");
  if (interrupted) return 128 + interrupted;
  return result;
}

}  // namespace ddp::dist
