#include "launch/restarts.h"

#include <pthread.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <iostream>
#include <limits>

#include "common/error.h"
#include "results/run_result.h"
#include "sys/atomic_file.h"
#include "sys/env.h"
#include "sys/job_dir.h"
#include "sys/launch_env.h"
#include "sys/process.h"
#include "train/snapshots.h"

namespace ddp::launch {

namespace {

namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kSnapshotName = "snapshot.safetensors";

// Where one job's snapshot, progress file and no-restart mark live: the
// snapshot in --checkpoint-dir (it outlives the job there) or in a private
// directory removed however the job ends (sys/job_dir.h).
class RestartFiles {
 public:
  // node: this launcher's node of a job that spans machines, else -1. Each
  // node's snapshot has a name of its own: --checkpoint-dir may be shared.
  RestartFiles(const train::TrainConfig& cfg, int node)
      : dir_(sys::env_string("TMPDIR", "/tmp")),
        in_checkpoint_dir_(!cfg.checkpoint_dir.empty()),
        snapshot_((fs::path(in_checkpoint_dir_ ? cfg.checkpoint_dir : dir_.path()) /
                   (node < 0 ? kSnapshotName : "snapshot.node" + std::to_string(node) + ".safetensors"))
                      .string()),
        progress_(dir_.path() + "/progress"),
        no_restart_(dir_.path() + "/no-restart") {
    std::error_code ec;
    if (in_checkpoint_dir_) fs::create_directories(cfg.checkpoint_dir, ec);  // rank 0 reports what fails
  }

  EnvList env() const {
    return {{kSnapshotPathVar, snapshot_}, {kProgressPathVar, progress_}, {kNoRestartVar, no_restart_}};
  }
  const std::string& snapshot() const { return snapshot_; }
  bool in_checkpoint_dir() const { return in_checkpoint_dir_; }
  // After a success the epochs' checkpoints hold the run: the snapshot goes
  // from --checkpoint-dir, unless it is the file given to --resume (the
  // user's: it stays, holding the last snapshot).
  void remove_snapshot_after_success(const train::TrainConfig& cfg) const {
    std::error_code ec;
    const bool resumed_file = !cfg.resume.empty() && cfg.resume != "auto" && fs::equivalent(cfg.resume, snapshot_, ec);
    if (in_checkpoint_dir_ && !resumed_file) fs::remove(snapshot_, ec);
  }

  // The failed attempt's progress (the file is removed: the next attempt writes its own).
  train::JobProgress take_progress() const {
    const train::JobProgress p = train::read_progress(progress_);
    ::unlink(progress_.c_str());
    return p;
  }
  // A rank asked not to be restarted; why (its mark's text).
  bool no_restart_marked() const { return fs::exists(no_restart_); }
  std::string no_restart_reason() const {
    std::ifstream in(no_restart_);
    std::string why((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return why.empty() ? "a rank ended with an error a restart would repeat" : why;
  }

  // A rank killed while it wrote a file leaves its temporary (sys/atomic_file.h:
  // <path>.tmp.<pid>) in the snapshot's, the checkpoints' or the results' directory.
  void remove_temporaries(const std::vector<int>& pids, const train::TrainConfig& cfg) const {
    std::vector<fs::path> dirs = {fs::path(snapshot_).parent_path()};
    if (!cfg.checkpoint_dir.empty()) dirs.push_back(cfg.checkpoint_dir);
    if (!cfg.save_results.empty()) dirs.push_back(fs::path(cfg.save_results).parent_path());
    for (fs::path& dir : dirs) {
      if (dir.empty()) dir = ".";
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        bool ours = name.starts_with(fs::path(snapshot_).filename().string() + ".tmp.");  // whoever wrote it (mpirun's ranks)
        for (int pid : pids) ours = ours || (pid > 0 && name.ends_with(".tmp." + std::to_string(pid)));
        if (ours) fs::remove(e.path(), ec);
      }
    }
  }

 private:
  sys::JobDir dir_;
  bool in_checkpoint_dir_;
  std::string snapshot_, progress_, no_restart_;
};

// What the launcher learns from the attempts: the latest snapshot of this
// job, and the restarts so far.
struct History {
  double job_start_unix = 0;
  int64_t snapshot_step = -1;     // the latest snapshot of this job (-1: none yet)
  double snapshot_unix = kNaN;
  int64_t first_step = 0;         // where the job's first attempt began (no snapshot yet: a restart begins there)
  double first_unix = kNaN;
  std::vector<results::RestartRecord> restarts;
  std::vector<std::string> failures;  // each failure, as the messages name it

  // An attempt ended: its progress updates what is known.
  void learn(const train::JobProgress& p, bool first_attempt) {
    if (first_attempt && p.start_step >= 0) {
      first_step = p.start_step;
      first_unix = p.start_unix;
    }
    if (!restarts.empty() && std::isnan(restarts.back().recovery_s) && p.start_unix > 0) {
      auto& last = restarts.back();
      last.recovery_s = p.start_unix - (job_start_unix + last.at_s);
      last.seconds_lost = p.start_unix - from_unix_[static_cast<size_t>(last.restart - 1)];
    }
    if (p.snapshot_step >= 0) {
      snapshot_step = p.snapshot_step;
      snapshot_unix = p.snapshot_unix;
    }
  }

  // The record of a failure; the restart resumes from the latest snapshot.
  results::RestartRecord record(const dist::LaunchOutcome& out, const train::JobProgress& p, double now) {
    results::RestartRecord x;
    x.restart = static_cast<int>(restarts.size()) + 1;
    x.at_s = now - job_start_unix;
    x.rank = out.failed_rank;
    x.cause = out.cause;
    x.resumed_step = snapshot_step >= 0 ? snapshot_step : first_step;
    x.steps_rerun = std::max<int64_t>(0, p.completed - x.resumed_step);
    // When the job was last at that step: the failed attempt's snapshot of
    // it, or its start from it, else (it never trained) an earlier attempt's.
    const double from = p.snapshot_step >= 0 ? p.snapshot_unix
                        : p.start_unix > 0   ? p.start_unix
                        : snapshot_step >= 0 ? snapshot_unix
                                             : first_unix;
    x.rerun_s = x.steps_rerun > 0 ? p.completed_unix - from : 0;
    x.recovery_s = x.seconds_lost = kNaN;  // known once the next attempt trains
    from_unix_.push_back(from);
    return x;
  }

 private:
  std::vector<double> from_unix_;  // [restart - 1]: when the job was last at the step it resumed
};

std::string seconds_text(double s) {
  if (std::isnan(s)) return "?";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

// "rank 3", or "a rank" where the launcher could not tell (mpirun did not say).
std::string rank_text(int rank) { return rank >= 0 ? "rank " + std::to_string(rank) : "a rank"; }

// "at 3.07 s: rank 1 was killed by signal 9 (SIGKILL)": the time first,
// since a cause may end in a clause of its own.
std::string failure_text(int rank, const std::string& cause, double at_s) {
  return "at " + seconds_text(at_s) + ": " + rank_text(rank) + " " + cause;
}

std::string describe(const results::RestartRecord& x) {
  const std::string head = failure_text(x.rank, x.cause, x.at_s) + "; ";
  // No step after the restart: the failure came after the last one (a rank
  // stopped as the job ended), and the restart only finished the job.
  if (std::isnan(x.recovery_s))
    return head + "restarted from step " + std::to_string(x.resumed_step) + " with no step left to train";
  return head + std::to_string(x.steps_rerun) + " steps (" + seconds_text(x.rerun_s) + ") re-run from step " +
         std::to_string(x.resumed_step) + "; training again " + seconds_text(x.recovery_s) + " after the failure, " +
         seconds_text(x.seconds_lost) + " lost";
}

// The restarts into the results file rank 0 wrote (an optional field).
void add_to_results(const std::string& path, const std::vector<results::RestartRecord>& restarts) {
  results::RunResult r = results::read_results_file(path);
  r.restarts = restarts;
  sys::write_file_atomic(path, results::to_json(r).dump(2) + "\n");
}

// Every restart allowed was used: one message naming each failure.
int exhausted(const std::string& name, const train::TrainConfig& cfg, const History& h, const RestartFiles& files,
              const dist::LaunchOutcome& last) {
  std::string list;
  bool same_rank = true;
  for (size_t i = 0; i < h.failures.size(); ++i) list += "\n  " + std::to_string(i + 1) + ". " + h.failures[i];
  for (const auto& x : h.restarts) same_rank = same_rank && x.rank == last.failed_rank;
  std::cerr << name << ": error: the job failed " << h.failures.size() << " times, and --max-restarts "
            << cfg.max_restarts << " allows no more restarts:" << list << "\n  fix: "
            << (same_rank && last.failed_rank >= 0
                    ? "rank " + std::to_string(last.failed_rank) + " failed every time: read its output above"
                    : "read the failed ranks' output above")
            << "; raise --max-restarts if the failures are transient"
            << (files.in_checkpoint_dir() && fs::exists(files.snapshot())
                    ? "; continue from the latest snapshot with --resume " + files.snapshot()
                    : "")
            << "\n";
  return last.status;
}

// The supervision signals stay blocked between attempts, so that one that
// arrives then is taken by the next attempt's supervisor (which forwards it:
// the job stops) rather than killing the launcher.
struct BlockSignals {
  sigset_t old{};
  BlockSignals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, sig);
    pthread_sigmask(SIG_BLOCK, &set, &old);
  }
  ~BlockSignals() { pthread_sigmask(SIG_SETMASK, &old, nullptr); }
};

// The end of a job that succeeded.
int succeeded(const train::TrainConfig& cfg, const std::string& name, const History& h, const RestartFiles& files) {
  files.remove_snapshot_after_success(cfg);
  if (h.restarts.empty()) return 0;
  bool same_world = true;
  for (const auto& x : h.restarts) same_world = same_world && (x.world_size == 0 || x.world_size == cfg.world_size);
  std::cout << name << ": " << h.restarts.size() << " restart(s), "
            << (same_world ? "the run is the one that would have been:\n"
                           : "and the world changed (lost nodes): the run continued on fewer ranks, not the one "
                             "that would have been:\n");
  for (const auto& x : h.restarts) std::cout << "  " << x.restart << ". " << describe(x) << "\n";
  if (!cfg.save_results.empty()) add_to_results(cfg.save_results, h.restarts);
  return 0;
}

}  // namespace

namespace {

// The mode whose ranks hold state rank 0's snapshot does not, and what, or "".
std::string mode_a_snapshot_cannot_hold(const train::TrainConfig& cfg) {
  if (cfg.accumulate > 1) return "--accumulate (the gradients summed so far in a group)";
  if (cfg.sync_every > 1) return "--sync-every (each rank's own parameters between averages)";
  if (cfg.stale_gradients > 0) return "--stale-gradients (the gradient in flight)";
  if (cfg.grad_compression == dist::Compression::powersgd)
    return "--grad-compression powersgd (each rank's error-feedback residuals)";
  return "";
}

}  // namespace

void check_restartable(const train::TrainConfig& cfg, const ClusterFlags& f) {
  const bool elastic_flags = f.min_nnodes > 0 || f.rejoin_timeout_given;
  if (elastic_flags && (cfg.max_restarts == 0 || f.nnodes == 1))
    throw UserError("--min-nnodes and --rejoin-timeout act when a job spanning machines restarts",
                    cfg.max_restarts == 0 ? "add --max-restarts N (and --nnodes M > 1), or drop them"
                                          : "they need --nnodes M > 1; on one machine drop them");
  if (f.min_nnodes > f.nnodes)
    throw UserError("--min-nnodes " + std::to_string(f.min_nnodes) + " is more than --nnodes " +
                        std::to_string(f.nnodes),
                    "give at most " + std::to_string(f.nnodes) + " (a restart may continue with that many nodes)");
  if (cfg.max_restarts == 0 && cfg.snapshot_every_s <= 0) return;
  if (const std::string mode = mode_a_snapshot_cannot_hold(cfg); !mode.empty())
    throw UserError(std::string(cfg.max_restarts > 0 ? "--max-restarts" : "--snapshot-every") + " with " + mode +
                        ": a snapshot holds rank 0's parameters and momentum only, so a restart from one would not "
                        "be the run that would have been",
                    "drop --max-restarts and --snapshot-every (resume after a failure with --checkpoint-dir DIR "
                    "--resume auto, from an epoch's end), or train without that mode");
}

void apply_restart_env(train::TrainConfig& cfg) {
  cfg.snapshot_path = sys::env_string(kSnapshotPathVar, "");
  if (cfg.max_restarts > 0 && cfg.snapshot_path.empty())
    throw UserError("--max-restarts is for train_parallel's own launcher, which restarts its ranks; this rank was "
                    "started by another launcher (mpirun, srun or a torchrun-style launcher)",
                    "drop --max-restarts and use that launcher's restarts (e.g. torchrun --max-restarts), or let "
                    "train_parallel start the ranks; --snapshot-every S with --checkpoint-dir DIR still writes "
                    "snapshots to resume from");
  cfg.progress_path = sys::env_string(kProgressPathVar, "");
  cfg.restart_from = sys::env_string(kRestartFromVar, "");
  // Every node's launcher gives its own paths; its first rank writes there.
  const sys::EnvPlace place = sys::place_from_env();
  cfg.node_snapshot = !cfg.snapshot_path.empty() && place.local_rank == 0 && place.rank > 0;
  if (cfg.snapshot_path.empty() && cfg.snapshot_every_s > 0 && !cfg.checkpoint_dir.empty())
    cfg.snapshot_path = (fs::path(cfg.checkpoint_dir) / kSnapshotName).string();
}

void mark_no_restart(const std::string& why) {
  const std::string path = sys::env_string(kNoRestartVar, "");
  if (path.empty()) return;
  if (FILE* f = std::fopen(path.c_str(), "w")) {
    std::fputs(why.c_str(), f);
    std::fclose(f);
  }
}

namespace {

std::chrono::milliseconds ms_of(double seconds) { return std::chrono::milliseconds(static_cast<long>(seconds * 1000)); }

// How long node 0 waits, at the job's end, for the other nodes to see it:
// theirs end within --timeout of its ranks' (a few seconds more to reap).
std::chrono::milliseconds end_wait(const train::TrainConfig& cfg) { return ms_of(std::min(cfg.timeout_s + 5, 15.0)); }

// Why an attempt that failed must not be restarted, or "".
std::string no_restart_reason(const train::TrainConfig& cfg, const dist::LaunchOutcome& out, const RestartFiles& files) {
  if (out.interrupted) return std::string("stopped by ") + sys::signal_name(out.interrupted);
  if (files.no_restart_marked()) return files.no_restart_reason();
  if (cfg.max_restarts == 0) return "--max-restarts 0";
  return "";
}

// Where the round puts this launcher's ranks.
AttemptPlan plan_of(const Round& r, const NodePart& part) {
  return {r.position(part.node) * part.per_node, static_cast<int>(r.nodes.size()) * part.per_node};
}

// A signal or a silence names the rank that caused a failure; "exited with
// status 1" is most often a rank that lost its peer.
int blame_weight(const std::string& cause) {
  return cause.starts_with("was killed") ? 2 : cause.starts_with("went silent") ? 1 : 0;
}

// Who to blame for a failure across machines. Node 0's own ranks mostly
// only lost a peer ("exited with status 1"); better: a rank another node
// saw killed or silent; else a node whose launcher died with its ranks
// (it came back new, or not at all): its first rank in the failed attempt.
void blame_across(results::RestartRecord& x, const Round& before, const Round& now, const NodePart& part,
                  const std::map<int, NodeFailure>& reports) {
  for (const auto& [node, f] : reports)
    if (f.rank >= 0 && blame_weight(f.cause) > blame_weight(x.cause)) {
      x.rank = f.rank;
      x.cause = f.cause;
    }
  if (blame_weight(x.cause) > 0) return;
  char wait[32];
  std::snprintf(wait, sizeof wait, "%g", part.rejoin_timeout_s);
  for (int n : before.nodes) {
    const auto report = reports.find(n);
    const bool lost = now.position(n) < 0, restarted = report != reports.end() && report->second.new_launcher;
    if (!lost && !restarted) continue;
    x.rank = before.position(n) * part.per_node;
    x.cause = "was lost with node " + std::to_string(n) + "'s launcher, " +
              (lost ? std::string("which did not come back within --rejoin-timeout ") + wait + " s"
                    : std::string("which was started again and rejoined"));
    return;
  }
}

// A restart on fewer nodes than the job had: say so.
void note_lost_nodes(const Round& r, const NodePart& part, int world_size, const std::string& name) {
  std::string list;
  for (int n = 0; n < part.nnodes; ++n)
    if (r.position(n) < 0) list += (list.empty() ? "" : ", ") + std::to_string(n);
  if (list.empty()) return;
  std::cerr << name << ": node " << list << " did not come back within --rejoin-timeout " << part.rejoin_timeout_s
            << " s: continuing with " << r.nodes.size() << " of " << part.nnodes << " nodes, " << world_size
            << " rank(s) (--min-nnodes " << part.min_nnodes
            << "); the rest of the epoch is dealt to them, so the run is no longer bit for bit the one that "
               "would have been"
            << std::endl;
}

// What a node can do when node 0 is lost: its own snapshot continues the job.
std::string node0_lost_hint(const RestartFiles& files) {
  if (!files.in_checkpoint_dir())
    return "node 0 holds the snapshot a restart continues from; if it is lost, start the job again (with "
           "--checkpoint-dir DIR every node keeps a snapshot of its own to continue from)";
  return "node 0 holds the snapshot a restart continues from; if it is lost, start the job again on the nodes "
         "left (--nnodes and --node-rank for them, numbered from 0; on one node left, without --min-nnodes and "
         "--rejoin-timeout), adding --resume " + files.snapshot() + " (this node's snapshot) on the new node 0";
}

// Node 0, when too few nodes came back: how to continue the job.
std::string too_few_nodes_hint(const RestartFiles& files) {
  return std::string("the job ends here; ") +
         (files.in_checkpoint_dir() && fs::exists(files.snapshot())
              ? "continue it by starting every node again with the same command plus --resume " + files.snapshot() +
                    " (node 0 reads it; the others only need the flag)"
              : "start it again (with --checkpoint-dir DIR, a snapshot to continue from is kept)") +
         "; to ride out such a loss next time, raise --rejoin-timeout or lower --min-nnodes";
}

// A node other than node 0: follows node 0's rounds until the job ends.
int follow_rounds(const train::TrainConfig& cfg, const std::string& name, const Attempt& attempt,
                  const NodePart& part, const RestartFiles& files) {
  NodeRounds& rounds = *part.rounds;
  NodeFailure last;
  int status = 0;
  for (int k = 0;; ++k) {
    // After a failure node 0 first waits for its own ranks (up to --timeout), then for the nodes.
    Round r;
    try {
      r = rounds.join(ms_of(k == 0 ? cfg.timeout_s : cfg.timeout_s + part.rejoin_timeout_s + 10), last);
    } catch (const UserError& e) {
      if (k == 0) throw;
      throw UserError(e.what(), node0_lost_hint(files));
    }
    if (!r.ended.empty()) {
      std::cerr << name << ": node 0 ended the job: " << r.ended << std::endl;
      return status != 0 ? status : 1;
    }
    EnvList env = files.env();
    if (r.from_snapshot) env.push_back({kRestartFromVar, files.snapshot()});  // rank 0 (node 0's) reads its own
    const AttemptPlan plan = plan_of(r, part);
    if (r.number > 0)
      std::cerr << name << ": restart " << r.number << ": starting this node's ranks again (ranks "
                << plan.rank_offset << ".." << plan.rank_offset + part.per_node - 1 << " of " << plan.world_size
                << ")" << std::endl;
    const dist::LaunchOutcome out = attempt(env, plan);
    (void)files.take_progress();
    if (out.status == 0) {
      files.remove_snapshot_after_success(cfg);
      return 0;
    }
    if (const std::string why = no_restart_reason(cfg, out, files); !why.empty()) {
      rounds.stop(why, end_wait(cfg));
      return out.status;
    }
    files.remove_temporaries(out.pids, cfg);
    last = {out.failed_rank, out.cause};
    rounds.report_failure(last);
    status = out.status;
  }
}

}  // namespace

int run_with_restarts(const train::TrainConfig& cfg, const std::string& name, const Attempt& attempt,
                      const NodePart* across) {
  if (train::snapshot_interval_s(cfg) == 0) return attempt({}, {}).status;
  const BlockSignals blocked;
  const RestartFiles files(cfg, across ? across->node : -1);
  if (across && !across->rounds->leads()) return follow_rounds(cfg, name, attempt, *across, files);
  History h;
  h.job_start_unix = train::unix_now();
  EnvList env = files.env();
  Round before;  // across machines: the last attempt's round
  for (int k = 0;; ++k) {
    AttemptPlan plan;
    if (across) {
      Round r;
      try {
        r = across->rounds->lead(k, h.snapshot_step >= 0, ms_of(k == 0 ? cfg.timeout_s : across->rejoin_timeout_s),
                                 k == 0 ? across->nnodes : across->min_nnodes);
      } catch (const UserError& e) {
        across->rounds->end(e.what(), end_wait(cfg));
        if (k == 0) throw;
        throw UserError(e.what(), too_few_nodes_hint(files));
      }
      if (!r.stop.empty()) {
        across->rounds->end(r.stop, end_wait(cfg));
        std::cerr << name << ": " << r.stop << ": the job ends without a restart" << std::endl;
        return 1;
      }
      plan = plan_of(r, *across);
      if (k > 0) {
        auto& x = h.restarts.back();
        blame_across(x, before, r, *across, across->rounds->reports());
        h.failures.back() = failure_text(x.rank, x.cause, x.at_s);
        x.world_size = plan.world_size;
        note_lost_nodes(r, *across, x.world_size, name);
      }
      before = r;
    }
    const dist::LaunchOutcome out = attempt(env, plan);
    const double now = train::unix_now();
    const train::JobProgress p = files.take_progress();
    h.learn(p, k == 0);
    if (out.status == 0) {
      if (across) across->rounds->finish();
      return succeeded(cfg, name, h, files);
    }
    std::string why = no_restart_reason(cfg, out, files);
    if (why.empty() && across) why = across->rounds->stop_requested();
    if (!why.empty()) {
      if (across) across->rounds->end(why, end_wait(cfg));
      return out.status;
    }
    files.remove_temporaries(out.pids, cfg);
    h.restarts.push_back(h.record(out, p, now));
    h.restarts.back().world_size = cfg.world_size;  // across machines: the next round's (above)
    h.failures.push_back(failure_text(out.failed_rank, out.cause, h.restarts.back().at_s));
    if (k == cfg.max_restarts) {
      if (across) across->rounds->end("the job failed and --max-restarts allows no more restarts", end_wait(cfg));
      return exhausted(name, cfg, h, files, out);
    }
    env = files.env();
    if (h.snapshot_step >= 0) env.push_back({kRestartFromVar, files.snapshot()});
    std::cerr << name << ": restart " << k + 1 << " of " << cfg.max_restarts << ": starting every rank again from "
              << (h.snapshot_step >= 0 ? "the snapshot of step " + std::to_string(h.snapshot_step)
                                       : std::string("where the job began (no snapshot yet)"))
              << std::endl;
  }
}

}  // namespace ddp::launch
