// Runs a data-parallel job on this machine, like torchrun / mp.spawn: starts
// world_size copies of a program and supervises them.
//
//  - Makes a private rendezvous directory (mkdtemp "ddp-XXXXXX" under $TMPDIR
//    or /tmp, mode 0700; sys/job_dir.h), a unique job id, so that
//    simultaneous launches never meet, and a fresh job secret (unless the
//    caller gives one), which the ranks' store values are tagged with
//    (dist/store_tag.h).
//  - Starts every worker (fork + exec) with RANK, WORLD_SIZE, LOCAL_RANK,
//    LOCAL_WORLD_SIZE, DDP_RENDEZVOUS_DIR, DDP_JOB_ID, DDP_JOB_SECRET set
//    (the secret in the environment, never in argv, which every user can
//    read), plus the caller's extra variables. Workers die with the launcher (PR_SET_PDEATHSIG) and
//    start with default signal dispositions and an empty signal mask.
//  - If a worker is killed by a signal or exits non-zero, prints one line
//    naming the rank and the cause, sends SIGTERM to the others, SIGKILL after
//    grace_s, reaps them all, and returns the first failure's exit code (or
//    128 + signal number).
//  - SIGINT / SIGTERM / SIGHUP to the launcher are forwarded to every worker
//    (SIGKILL after grace_s); the launcher then returns 128 + that signal
//    (130 / 143 / 129). A second such signal kills the workers at once.
//  - The rendezvous directory is removed however the job ends, the launcher
//    SIGKILLed included (by a guardian process once the launcher and its
//    ranks are gone; sys/job_dir.h). While the launcher lives it stays,
//    even when a rank dies.
//
// The calling thread blocks SIGINT, SIGTERM, SIGHUP and SIGCHLD while the job
// runs (restored on return). Only this launch's own children are waited for,
// so several launches may run at once from different threads.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ddp::dist {

struct LaunchOptions {
  int world_size = 1;
  std::vector<std::string> argv;  // argv[0] = path of the executable (no PATH search)
  // Extra variables for every worker (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
  // DDP_RENDEZVOUS_DIR, DDP_JOB_ID and DDP_JOB_SECRET are always the launcher's own).
  std::vector<std::pair<std::string, std::string>> env;
  double grace_s = 3;    // how long stopped workers get between SIGTERM and SIGKILL
  std::string job_name;  // prefix of messages and of the job id; default: basename of argv[0]
  // One node of a larger job: these world_size workers are ranks
  // rank_offset .. rank_offset + world_size - 1 of global_world_size (0: just
  // world_size). RANK and WORLD_SIZE are the global ones, LOCAL_RANK and
  // LOCAL_WORLD_SIZE the local ones; messages name global ranks.
  int rank_offset = 0;
  int global_world_size = 0;
  // The job secret handed to every rank (DDP_JOB_SECRET). Unset: a fresh
  // random one (a job whose ranks are all this launcher's); "": none (ranks
  // that meet others, without a secret, at a file:// rendezvous).
  std::optional<std::string> job_secret;
  // A job that will be restarted after a failure (launch/restarts.h): the
  // other workers are killed at once (SIGKILL, no grace period), since the
  // restart continues from a snapshot and nothing of theirs is worth a
  // clean end.
  bool kill_on_failure = false;
  // Asked about every 100 ms while the job runs (in the calling thread): a
  // non-empty answer says why this attempt is over although no worker has
  // failed (another node's launcher saw the job fail, and these ranks may
  // be waiting for a peer that is stopped: launch/node_rounds.h). The
  // workers are then stopped as after a failure, and the launch fails with
  // that cause (blaming a stopped worker of this launch, if there is one).
  std::function<std::string()> abandon;
};

// How a launch ended, for a caller that may restart it.
struct LaunchOutcome {
  int status = 0;          // what launch_local returns
  int interrupted = 0;     // the signal (SIGINT, SIGTERM, SIGHUP) that stopped the job, else 0
  int failed_rank = -1;    // the (global) rank blamed for the failure, else -1
  std::string cause;       // how it failed, as the message said: "was killed by signal 9 (SIGKILL)", ...
  std::vector<int> pids;   // the workers' process ids, by local rank (-1: never started)
};

// Returns 0 when every worker exited with status 0, otherwise as described
// above; fills *outcome when given. Throws ddp::UserError for problems found
// before any worker starts (no such executable, no usable temporary
// directory, bad world size).
int launch_local(const LaunchOptions& options, LaunchOutcome* outcome = nullptr);

}  // namespace ddp::dist
