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
#include <optional>
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

// Whether the process is stopped (state T or t in /proc/PID/stat: SIGSTOP,
// Ctrl-Z or a debugger).
bool is_stopped(pid_t pid) {
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return false;
  char buf[512] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const char* paren = std::strrchr(buf, ')');  // the command name may hold spaces and parentheses
  return n > 0 && paren && paren[1] == ' ' && (paren[2] == 'T' || paren[2] == 't');
}

// The first running rank that is stopped, or -1. The others time out
// waiting for its contribution: it is the one to name, not the rank whose
// timeout ended first.
int stopped_rank(const std::vector<Worker>& workers) {
  for (size_t r = 0; r < workers.size(); ++r)
    if (workers[r].running && is_stopped(workers[r].pid)) return static_cast<int>(r);
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

// The checks launch_local makes before it starts anything (throws
// UserError); returns the world size of the whole job.
int checked_global_world(const LaunchOptions& o) {
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
  return global;
}

// What every worker of one job shares: where it meets the others, and how.
struct JobIdentity {
  int global = 1;
  std::string rendezvous_dir, job_id, secret;
  int keep_open_fd = -1;  // the job directory's descriptor (sys/job_dir.h)
};

// Local rank r's process: the launcher's own variables win over the
// caller's extra ones.
sys::SpawnOptions worker_spawn(const LaunchOptions& o, const JobIdentity& job, int r) {
  static const std::set<std::string> reserved = {
      sys::kRankVar,          sys::kWorldSizeVar, sys::kLocalRankVar, sys::kLocalWorldSizeVar,
      sys::kRendezvousDirVar, sys::kJobIdVar,     kJobSecretVar};
  sys::SpawnOptions so;
  so.argv = o.argv;
  for (auto& kv : o.env)
    if (!reserved.count(kv.first)) so.env.push_back(kv);
  so.env.push_back({sys::kRankVar, std::to_string(o.rank_offset + r)});
  so.env.push_back({sys::kWorldSizeVar, std::to_string(job.global)});
  so.env.push_back({sys::kLocalRankVar, std::to_string(r)});
  so.env.push_back({sys::kLocalWorldSizeVar, std::to_string(o.world_size)});
  so.env.push_back({sys::kRendezvousDirVar, job.rendezvous_dir});
  so.env.push_back({sys::kJobIdVar, job.job_id});
  so.env.push_back({kJobSecretVar, job.secret});  // "" clears it: a job without a secret
  so.parent_death_signal = SIGKILL;
  so.inherit_fds.push_back(job.keep_open_fd);
  return so;
}

// With SIGCHLD ignored the kernel reaps children itself and their exit
// statuses are lost: the default disposition while the job runs.
struct ChldGuard {
  struct sigaction old {};
  bool changed = false;
  ChldGuard() {
    if (::sigaction(SIGCHLD, nullptr, &old) == 0 && old.sa_handler == SIG_IGN && !(old.sa_flags & SA_SIGINFO)) {
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      sigemptyset(&dfl.sa_mask);
      changed = ::sigaction(SIGCHLD, &dfl, nullptr) == 0;
    }
  }
  ~ChldGuard() {
    if (changed) ::sigaction(SIGCHLD, &old, nullptr);
  }
};

// Starts the workers and watches them until all have ended: the first
// failure or supervision signal stops the others (SIGTERM, then SIGKILL
// after the grace period, or at once when asked twice).
class Supervisor {
 public:
  Supervisor(const LaunchOptions& o, std::string name, const sigset_t& sup)
      : o_(o), name_(std::move(name)), sup_(sup), workers_(o.world_size) {}

  // Starts every worker; on a failed fork, stops those already started.
  void start(const JobIdentity& job) {
    for (int r = 0; r < o_.world_size; ++r) {
      const pid_t pid = sys::spawn(worker_spawn(o_, job, r));
      if (pid < 0) {
        fork_errno_ = errno;
        break;
      }
      workers_[r].pid = pid;
      workers_[r].running = true;
      ++alive_;
    }
    if (fork_errno_ != 0) {
      std::fprintf(stderr, "%s: cannot start rank %d: %s; stopping the other ranks\n", name_.c_str(),
                   o_.rank_offset + alive_, std::strerror(fork_errno_));
      result_ = 1;
      first_failure_ = alive_;
      cause_ = std::string("could not be started: ") + std::strerror(fork_errno_);
      stop_all(SIGTERM);
    }
  }

  // What the job's end was (after supervise).
  LaunchOutcome outcome(int status) const {
    LaunchOutcome out;
    out.status = status;
    out.interrupted = interrupted_;
    out.failed_rank = first_failure_ >= 0 ? o_.rank_offset + first_failure_ : -1;
    out.cause = cause_;
    for (const auto& w : workers_) out.pids.push_back(w.pid);
    return out;
  }

  // Until every worker has ended. Returns the job's exit status.
  int supervise() {
    while (alive_ > 0) {
      const std::vector<int> ended = reap(workers_, alive_);
      for (int r : ended) finished_ += failed(workers_[r].status) ? 0 : 1;
      if (first_failure_ < 0 && !interrupted_ && !abandoned_ && !ended_stopped_) blame_failure(ended);
      if (first_failure_ < 0 && !stopping_ && !killed_ && finished_ > 0) end_stopped_after_finish();
      if (!stopping_ && o_.abandon && Clock::now() >= next_poll_) {
        next_poll_ = Clock::now() + std::chrono::milliseconds(100);
        if (const std::string why = o_.abandon(); !why.empty()) abandon(why);
      }
      if (alive_ == 0) break;
      // A failure with a restart to come ends the others at once; a stop on
      // purpose (a signal to the launcher) gives them their grace to stop
      // together and write a checkpoint.
      if (stopping_ && !killed_ && ((o_.kill_on_failure && !interrupted_) || Clock::now() >= deadline_)) kill_all();
      struct timespec ts = {0, 20 * 1000 * 1000};
      siginfo_t info;
      on_signal(::sigtimedwait(&sup_, &info, &ts));
    }
    drain_signals();
    if (fork_errno_ != 0 && !interrupted_)
      throw UserError(name_ + ": cannot start " + std::to_string(o_.world_size) + " processes: " +
                          std::strerror(fork_errno_),
                      "use fewer processes or raise the process limit (ulimit -u)");
    return interrupted_ ? 128 + interrupted_ : result_;
  }

 private:
  void stop_all(int sig) {
    signal_running(workers_, sig);
    if (!stopping_) {
      stopping_ = true;
      deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.grace_s));
    }
  }

  void kill_all() {
    signal_running(workers_, SIGKILL);
    killed_ = true;
  }

  // Of the ranks that ended in the same sweep, blames one killed by a
  // signal first: the others most likely failed because it died.
  void blame_failure(const std::vector<int>& ended) {
    int blame = -1;
    for (int r : ended)
      if (failed(workers_[r].status) &&
          (blame < 0 || (WIFSIGNALED(workers_[r].status) && !WIFSIGNALED(workers_[blame].status))))
        blame = r;
    if (blame < 0) return;
    const int st = workers_[blame].status;
    first_failure_ = blame;
    const char* stopping = alive_ > 0 ? "; stopping the other ranks" : "";
    if (WIFSIGNALED(st)) {
      const int sig = WTERMSIG(st);
      result_ = 128 + sig;
      cause_ = "was killed by signal " + std::to_string(sig) + " (" + sys::signal_name(sig) + ")";
    } else if (const int silent = stopped_rank(workers_); silent >= 0) {
      result_ = WEXITSTATUS(st);
      first_failure_ = silent;
      cause_ = "went silent: it is stopped (SIGSTOP, Ctrl-Z or a debugger), so rank " +
               std::to_string(o_.rank_offset + blame) + " timed out waiting for it and exited with status " +
               std::to_string(result_);
      stopping = "; stopping the other ranks";
    } else {
      result_ = WEXITSTATUS(st);
      cause_ = "exited with status " + std::to_string(result_);
    }
    std::fprintf(stderr, "%s: rank %d %s%s\n", name_.c_str(), o_.rank_offset + first_failure_, cause_.c_str(),
                 stopping);
    std::fflush(stderr);
    stop_all(SIGTERM);
  }

  // A rank that exited 0 has passed the job's last collective, so a rank
  // still stopped then is never timed out by the others and would hold the
  // launcher forever. After grace_s with every running rank stopped: if rank
  // 0 (which writes the results and the checkpoint) is one of them, it is
  // continued once, and if it stops again (or a debugger holds it) the job
  // failed (a restart, if allowed, re-runs the end); otherwise the job is
  // done and the stopped ranks, which hold nothing of it, are ended.
  void end_stopped_after_finish() {
    int stopped = 0, rank0 = -1;
    std::string names;
    for (size_t r = 0; r < workers_.size(); ++r)
      if (workers_[r].running && is_stopped(workers_[r].pid)) {
        ++stopped;
        const int global = o_.rank_offset + static_cast<int>(r);
        if (global == 0) rank0 = static_cast<int>(r);
        names += (names.empty() ? "" : ", ") + std::to_string(global);
      }
    if (stopped < alive_) {
      all_stopped_since_.reset();
      return;
    }
    if (!all_stopped_since_) all_stopped_since_ = Clock::now();
    if (Clock::now() - *all_stopped_since_ < std::chrono::duration<double>(o_.grace_s)) return;
    if (rank0 >= 0 && !continued_rank0_) {
      // Its results are the job's: continue it once so that it writes them.
      continued_rank0_ = true;
      all_stopped_since_.reset();
      std::fprintf(stderr,
                   "%s: rank 0 is stopped (SIGSTOP, Ctrl-Z or a debugger) after the other ranks finished, before it "
                   "wrote the results; continuing it (SIGCONT) so that it does\n",
                   name_.c_str());
      std::fflush(stderr);
      ::kill(workers_[static_cast<size_t>(rank0)].pid, SIGCONT);
      return;
    }
    if (rank0 >= 0) {  // stopped again (or held by a debugger): the job cannot end well
      first_failure_ = rank0;
      result_ = 1;
      cause_ = "went silent: it is stopped (SIGSTOP, Ctrl-Z or a debugger) after the other ranks finished, before "
               "it wrote the job's results";
      std::fprintf(stderr, "%s: rank 0 %s\n", name_.c_str(), cause_.c_str());
      std::fflush(stderr);
      stop_all(SIGTERM);
      return;
    }
    ended_stopped_ = true;
    std::fprintf(stderr, "%s: %s %s %s stopped (SIGSTOP, Ctrl-Z or a debugger) after the job finished; ending %s\n",
                 name_.c_str(), stopped == 1 ? "rank" : "ranks", names.c_str(), stopped == 1 ? "is" : "are",
                 stopped == 1 ? "it" : "them");
    std::fflush(stderr);
    kill_all();
  }

  // Another launcher of the job saw it fail (LaunchOptions::abandon).
  void abandon(const std::string& why) {
    abandoned_ = true;
    result_ = 1;
    if (const int silent = stopped_rank(workers_); silent >= 0) {
      first_failure_ = silent;
      cause_ = "went silent: it is stopped (SIGSTOP, Ctrl-Z or a debugger), and " + why;
      std::fprintf(stderr, "%s: rank %d %s; stopping the other ranks\n", name_.c_str(), o_.rank_offset + silent,
                   cause_.c_str());
    } else {
      cause_ = why;
      std::fprintf(stderr, "%s: %s; stopping this launcher's ranks\n", name_.c_str(), why.c_str());
    }
    std::fflush(stderr);
    stop_all(SIGTERM);
  }

  void on_signal(int sig) {
    if (sig != SIGINT && sig != SIGTERM && sig != SIGHUP) return;
    if (!interrupted_) {
      interrupted_ = sig;
      std::fprintf(stderr, "%s: received %s; stopping all %d ranks\n", name_.c_str(), sys::signal_name(sig).c_str(),
                   o_.world_size);
      std::fflush(stderr);
      stop_all(sig);
    } else if (!killed_) {  // asked twice: no more patience
      kill_all();
    }
  }

  // Takes any supervision signal that arrived at the very end, so restoring
  // the mask does not deliver it after the cleanup decision.
  void drain_signals() {
    for (;;) {
      struct timespec zero = {0, 0};
      const int sig = ::sigtimedwait(&sup_, nullptr, &zero);
      if (sig <= 0) break;
      if (sig != SIGCHLD && !interrupted_) interrupted_ = sig;
    }
  }

  const LaunchOptions& o_;
  const std::string name_;
  const sigset_t sup_;
  std::vector<Worker> workers_;
  int alive_ = 0;
  int fork_errno_ = 0;
  int interrupted_ = 0;  // the signal that stopped the job, if any
  int first_failure_ = -1;
  std::string cause_;  // how first_failure_ ended, as a clause
  bool abandoned_ = false;  // LaunchOptions::abandon ended the attempt
  int finished_ = 0;        // ranks that exited 0
  std::optional<Clock::time_point> all_stopped_since_;  // every running rank stopped since (after a finish)
  bool ended_stopped_ = false;  // stopped ranks were ended after the job finished: not a failure
  bool continued_rank0_ = false;  // rank 0, stopped after the others finished, was continued once
  Clock::time_point next_poll_{};
  int result_ = 0;
  bool stopping_ = false, killed_ = false;
  Clock::time_point deadline_{};
};

}  // namespace

int launch_local(const LaunchOptions& o, LaunchOutcome* outcome) {
  JobIdentity job;
  job.global = checked_global_world(o);
  const std::string name = o.job_name.empty() ? base_name(o.argv[0]) : o.job_name;

  // A private rendezvous directory (removed however the job ends:
  // sys/job_dir.h), a unique job id, and the job secret.
  const sys::JobDir dir(sys::env_string("TMPDIR", "/tmp"));
  job.rendezvous_dir = dir.path();
  job.job_id = sanitize(name) + "-" + std::to_string(::getpid()) + "-" + sys::random_hex(8);
  job.secret = o.job_secret ? *o.job_secret : new_job_secret();
  job.keep_open_fd = dir.keep_open_fd();

  // Supervision signals are taken synchronously (sigtimedwait) from here on.
  sigset_t sup;
  sigemptyset(&sup);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&sup, sig);
  const MaskGuard mask_guard(sup);
  const ChldGuard chld_guard;

  Supervisor supervisor(o, name, sup);
  supervisor.start(job);
  const int status = supervisor.supervise();
  if (outcome) *outcome = supervisor.outcome(status);
  return status;
}

}  // namespace ddp::dist
