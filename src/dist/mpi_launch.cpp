#include "dist/mpi_launch.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <regex>

#include "common/error.h"
#include "sys/env.h"
#include "sys/fd.h"
#include "sys/process.h"

namespace ddp::dist {

std::vector<std::string> mpirun_arguments(const MpirunOptions& o) {
  std::vector<std::string> a = {"-np", std::to_string(o.world_size)};
  if (o.world_size > o.cores) a.push_back("--oversubscribe");
  if (o.threads_per_rank > 1 || o.world_size * o.threads_per_rank > o.cores) {
    a.push_back("--bind-to");
    a.push_back("none");
  }
  for (const auto& arg : o.argv) a.push_back(arg);
  return a;
}

std::string mpirun_failure(const std::string& text) {
  static const std::regex killed(R"(process rank (\d+) with PID \d+ on node (\S+) exited on signal (\d+)(?: \(([^)]*)\))?)");
  static const std::regex exited(R"(Process name: \[\[\d+,\d+\],(\d+)\]\s*\n\s*Exit code:\s*(\d+))");
  std::smatch m;
  if (std::regex_search(text, m, killed)) {
    const int sig = std::atoi(m[3].str().c_str());
    return "rank " + m[1].str() + " (on " + m[2].str() + ") was killed by signal " + m[3].str() + " (" +
           sys::signal_name(sig) + ")";
  }
  if (std::regex_search(text, m, exited)) return "rank " + m[1].str() + " exited with status " + m[2].str();
  return "";
}

namespace {

// mpirun's command line and environment; throws UserError when it cannot run.
sys::SpawnOptions mpirun_spawn(const MpirunOptions& o) {
  if (o.world_size < 1)
    throw UserError("cannot launch " + std::to_string(o.world_size) + " ranks", "use at least 1 process");
  if (o.argv.empty()) throw UserError("no program to run under mpirun");
  const std::string mpirun = sys::find_executable(o.mpirun);
  if (mpirun.empty())
    throw UserError("'" + o.mpirun + "' was not found in PATH: the MPI backend needs OpenMPI's mpirun",
                    "install it (Debian: apt-get install openmpi-bin libopenmpi-dev, or scripts/install_deps.sh), "
                    "or use --backend gloo");
  sys::SpawnOptions so;
  so.argv = {mpirun};
  // mpirun gets only the signals this launcher forwards: a Ctrl-C, or a
  // SIGINT to the whole process group, that reached it as well would be
  // its second one, on which it kills the job at once and exits without
  // its ranks (which run on, unstopped, leaving their shared-memory
  // segments). In a group of its own it must not read the terminal.
  so.new_process_group = true;
  so.null_stdin = true;
  for (auto& a : mpirun_arguments(o)) so.argv.push_back(a);
  so.env = o.env;
  if (::geteuid() == 0) {  // mpirun refuses root unless told twice
    for (const char* v : {"OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"})
      if (!sys::env_set(v)) so.env.push_back({v, "1"});
  }
  return so;
}

// Passes mpirun's standard error (read end `fd`) through until it closes,
// and the signals in `sup` on to mpirun; returns the tail of what it wrote,
// for the report. `interrupted`: the first signal taken.
std::string relay_stderr(int fd, pid_t pid, const sigset_t& sup, int& interrupted) {
  std::string tail;
  bool open = true;
  while (open) {
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      char buf[4096];
      const ssize_t got = ::read(fd, buf, sizeof buf);
      if (got > 0) {
        sys::write_all(STDERR_FILENO, buf, static_cast<size_t>(got));
        tail.append(buf, static_cast<size_t>(got));
        if (tail.size() > 65536) tail.erase(0, tail.size() - 32768);
      } else if (got == 0 || errno != EINTR) {
        open = false;
      }
    }
    struct timespec zero = {0, 0};
    const int sig = ::sigtimedwait(&sup, nullptr, &zero);
    if (sig > 0) {
      if (!interrupted) interrupted = sig;
      // mpirun SIGTERMs the ranks (they stop at a step, with a checkpoint)
      // and waits for them; a second signal makes it kill them at once.
      ::kill(pid, sig);
    }
  }
  return tail;
}

// The job's exit status, with one line on stderr saying why it stopped.
int report_end(const MpirunOptions& o, int status, int interrupted, const std::string& tail) {
  const int code = sys::exit_status_of(status);
  if (interrupted) {
    std::fprintf(stderr, "%s: stopped by %s\n", o.job_name.c_str(), sys::signal_name(interrupted).c_str());
    return 128 + interrupted;
  }
  if (code != 0) {
    const std::string why = mpirun_failure(tail);
    if (!why.empty())
      std::fprintf(stderr, "%s: %s; mpirun stopped the other ranks\n", o.job_name.c_str(), why.c_str());
    else
      std::fprintf(stderr, "%s: the MPI job failed: mpirun exited with status %d (see its report above)\n",
                   o.job_name.c_str(), code);
    std::fflush(stderr);
  }
  return code;
}

// "rank 1 (on host) was killed by ..." as a LaunchOutcome: rank 1, "was killed by ...".
LaunchOutcome outcome_of(int code, int interrupted, const std::string& tail, pid_t mpirun) {
  LaunchOutcome out;
  out.status = code;
  out.interrupted = interrupted;
  out.pids = {static_cast<int>(mpirun)};
  if (code == 0 || interrupted) return out;
  const std::string why = mpirun_failure(tail);
  static const std::regex rank(R"(^rank (\d+) (?:\(on [^)]*\) )?(.*)$)");
  std::smatch m;
  if (std::regex_match(why, m, rank)) {
    out.failed_rank = std::stoi(m[1].str());
    out.cause = m[2].str();
  } else {
    out.cause = "made mpirun exit with status " + std::to_string(code);
  }
  return out;
}

}  // namespace

int launch_mpirun(const MpirunOptions& o, LaunchOutcome* outcome) {
  sys::SpawnOptions so = mpirun_spawn(o);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0)
    throw UserError(std::string("cannot create a pipe: ") + std::strerror(errno), "check the process's open-file limit");

  // The signals we pass on are taken synchronously while mpirun runs.
  sigset_t sup, old;
  sigemptyset(&sup);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&sup, sig);
  pthread_sigmask(SIG_BLOCK, &sup, &old);

  so.stderr_fd = pipefd[1];
  const pid_t pid = sys::spawn(so);
  const int fork_errno = errno;
  ::close(pipefd[1]);
  if (pid < 0) {
    ::close(pipefd[0]);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw UserError(std::string("cannot start mpirun: ") + std::strerror(fork_errno),
                    "raise the process limit (ulimit -u)");
  }
  int interrupted = 0;
  const std::string tail = relay_stderr(pipefd[0], pid, sup, interrupted);
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  for (;;) {  // signals that came at the very end
    struct timespec zero = {0, 0};
    const int sig = ::sigtimedwait(&sup, nullptr, &zero);
    if (sig <= 0) break;
    if (!interrupted) interrupted = sig;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  const int code = report_end(o, status, interrupted, tail);
  if (outcome) *outcome = outcome_of(code, interrupted, tail, pid);
  return code;
}

}  // namespace ddp::dist
