// train_parallel --max-restarts (docs/restarts.md): a rank SIGKILLed or
// SIGSTOPped at a random moment costs a restart from the latest snapshot,
// and the job ends with the parameters, momentum and loss history of a run
// that never failed, bit for bit; a rank that keeps failing exhausts the
// restarts with one message; a deliberate stop uses none; nothing is left
// behind. Sized for CI: --limit 1280 at batch 32, 2 or 3 epochs.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>

#include "apps_test_util.h"
#include "train/checkpoint.h"

using namespace apps_test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr int kEpochs = 3;
constexpr double kSnapshotEvery = 0.25;  // seconds

// max_restarts 0: without the restart flags.
std::vector<std::string> job(int world, const std::string& ckdir, const std::string& results, int max_restarts,
                             int epochs = kEpochs) {
  // --test-limit: evaluating all 10,000 test samples would take most of each run.
  std::vector<std::string> a = {binary("train_parallel"), "-w", std::to_string(world), "-b", "32", "--limit", "1280",
                                "--test-limit", "1000",
                                "-e", std::to_string(epochs), "--timeout", "3", "--no-progress", "--data-dir",
                                mnist_dir(), "--checkpoint-dir", ckdir, "--save-results", results};
  if (max_restarts > 0)
    a.insert(a.end(), {"--max-restarts", std::to_string(max_restarts), "--snapshot-every", std::to_string(kSnapshotEvery)});
  return a;
}

// The job's workers once `count` of them run (empty after 20 s).
std::vector<pid_t> workers_of(const Proc& p, size_t count) {
  for (int i = 0; i < 1000; ++i) {
    auto kids = children_of(p.pid);
    if (kids.size() >= count) return kids;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return {};
}

// Waits for the job (up to `limit` s), noting every worker it ever had.
bool wait_noting_workers(Proc& p, double limit, std::set<pid_t>& seen) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < limit) {
    for (pid_t k : children_of(p.pid)) seen.insert(k);
    if (waitpid(p.pid, &p.status, WNOHANG) == p.pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(p.pid, SIGKILL);
  waitpid(p.pid, &p.status, 0);
  return false;
}

// Nothing of the job is left: no process, no job directory in TMPDIR (the
// rendezvous keys and the private snapshots live there), in the checkpoint
// directory only checkpoints (no snapshot, no temporary file).
void expect_nothing_left(const std::set<pid_t>& seen, const std::string& tmpdir, const std::string& ckdir,
                         const std::string& what) {
  for (pid_t w : seen) EXPECT_FALSE(alive(w)) << what << ": worker " << w << " outlived the job";
  EXPECT_TRUE(fs::is_empty(tmpdir)) << what << ": left behind in TMPDIR: " << fs::directory_iterator(tmpdir)->path();
  for (const auto& e : fs::directory_iterator(ckdir)) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(name.starts_with("checkpoint_epoch") && name.ends_with(".safetensors")) << what << ": left " << name;
  }
}

struct Reference {
  ddp::train::CheckpointData last;
  std::vector<float> losses;
  double seconds = 0;  // the run's wall time, start to exit
};

Reference reference(const TempDir& tmp, int world, int epochs = kEpochs) {
  const std::string name = "ref" + std::to_string(world);
  const auto start = std::chrono::steady_clock::now();
  Proc p(job(world, tmp.path + "/" + name, tmp.path + "/" + name + ".json", 0, epochs), tmp.path + "/" + name + ".log");
  EXPECT_TRUE(p.wait(120));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(p.exit_code(), 0) << p.output();
  return {ddp::train::load_checkpoint(tmp.path + "/" + name + "/checkpoint_epoch" + std::to_string(epochs) +
                                      ".safetensors"),
          json::parse(read_file(tmp.path + "/" + name + ".json")).at("step_losses").get<std::vector<float>>(),
          seconds};
}

}  // namespace

// The issue's 20 runs, each a random rank of 2 or 3, SIGKILLed or
// SIGSTOPped (past the 3 s timeout) at a random moment, and their 2
// references; 2 epochs (not 3) to fit CI: a run takes about 2 s without a
// failure, a restart about 1 s more, a stopped rank the 3 s timeout more.
TEST(Restarts, ARandomRankKilledOrStoppedAtARandomMomentEndsBitIdenticalToAnUninterruptedRun) {
  constexpr int kRuns = 20, kShortEpochs = 2;
  TempDir tmp;
  const Reference ref[2] = {reference(tmp, 2, kShortEpochs), reference(tmp, 3, kShortEpochs)};
  std::mt19937 rng(20261130);
  int restarted = 0;
  for (int t = 0; t < kRuns; ++t) {
    const int world = 2 + static_cast<int>(rng() % 2);
    const int sig = rng() % 3 == 0 ? SIGSTOP : SIGKILL;
    const std::string dir = tmp.path + "/t" + std::to_string(t), tmpdir = dir + "/tmp", ck = dir + "/ck";
    fs::create_directories(tmpdir);
    Proc p(job(world, ck, dir + "/r.json", 2, kShortEpochs), dir + "/log", {{"TMPDIR", tmpdir}});
    const std::vector<pid_t> w = workers_of(p, static_cast<size_t>(world));
    ASSERT_EQ(w.size(), static_cast<size_t>(world)) << p.output();
    std::set<pid_t> seen(w.begin(), w.end());
    // A moment in the first 10-80% of an uninterrupted run, on a machine of
    // any speed (a signal after the end tests nothing).
    const double at = (0.1 + 0.7 * static_cast<double>(rng() % 1000) / 1000.0) * ref[world - 2].seconds;
    std::this_thread::sleep_for(std::chrono::duration<double>(at));
    const int victim = static_cast<int>(rng() % static_cast<unsigned>(world));
    kill(w[static_cast<size_t>(victim)], sig);
    const std::string what = "trial " + std::to_string(t) + " (" + (sig == SIGKILL ? "SIGKILL" : "SIGSTOP") +
                             " rank " + std::to_string(victim) + " of " + std::to_string(world) + ")";
    ASSERT_TRUE(wait_noting_workers(p, 90, seen)) << what << ": the job hung\n" << p.output();
    ASSERT_EQ(p.exit_code(), 0) << what << "\n" << p.output();

    const Reference& want = ref[world - 2];
    const auto got =
        ddp::train::load_checkpoint(ck + "/checkpoint_epoch" + std::to_string(kShortEpochs) + ".safetensors");
    EXPECT_TRUE(same_bits(got.params, want.last.params)) << what << ": parameters differ";
    EXPECT_TRUE(same_bits(got.momentum, want.last.momentum)) << what << ": momentum differs";
    const json r = json::parse(read_file(dir + "/r.json"));
    EXPECT_TRUE(same_bits(r.at("step_losses").get<std::vector<float>>(), want.losses)) << what << ": loss history";
    // The job may have ended before the signal came; otherwise one restart,
    // or two on a loaded machine: a restarted rank that waits for the others
    // longer than --timeout 3 s while they start fails to connect, and the
    // next restart (of 2 allowed) takes over.
    if (r.contains("restarts")) {
      ++restarted;
      ASSERT_GE(r["restarts"].size(), 1u) << what << "\n" << p.output();
      const json& x = r["restarts"][0];
      EXPECT_EQ(x["rank"], victim) << what << "\n" << x.dump();
      EXPECT_NE(x["cause"].get<std::string>().find(sig == SIGKILL ? "SIGKILL" : "went silent"), std::string::npos)
          << what << "\n" << x.dump();
      // At most one snapshot interval of training is re-run (plus the step
      // in which the interval ended, and its write, on a loaded machine).
      // A stopped rank 0 is the one that stamps the steps: continued by the
      // launcher after the others timed out, it may stamp the step it was
      // stopped in up to --timeout (3 s) late (seen once in 60 such runs).
      const double stamped_late = sig == SIGSTOP && victim == 0 ? 3.0 : 0.0;
      EXPECT_LE(x["rerun_s"].get<double>(), kSnapshotEvery + 0.5 + stamped_late) << what << "\n" << x.dump();
      EXPECT_GE(x["steps_rerun"].get<int>(), 0);
      // A failure after the last step (a rank killed or stopped as the job
      // ended) restarts from the last snapshot with no step left to train:
      // there is no first step to time.
      if (x["recovery_s"].is_null())
        EXPECT_EQ(x["resumed_step"].get<size_t>(), want.losses.size()) << what << "\n" << x.dump();
      else
        EXPECT_LT(x["recovery_s"].get<double>(), 15.0) << what << "\n" << x.dump();
    }
    expect_nothing_left(seen, tmpdir, ck, what);
  }
  // The signals come inside the run's first 80%: most runs must have
  // restarted for the test to mean anything.
  EXPECT_GE(restarted, 15) << "of " << kRuns << " runs";
  std::printf("%d of %d runs restarted\n", restarted, kRuns);
}

// The issue's command (with --limit, to fit CI): a SIGKILL mid-run, and
// checkpoint_epoch3 holds the parameters and momentum of the run without it.
TEST(Restarts, TheIssuesCommandWithASigkillGivesABitIdenticalLastCheckpoint) {
  TempDir tmp;
  auto cmd = [&](const std::string& ck, bool restarts) {
    std::vector<std::string> a = {binary("train_parallel"), "-w", "2", "-e", "3", "--limit", "1280", "--no-progress",
                                  "--data-dir", mnist_dir(), "--checkpoint-dir", tmp.path + "/" + ck};
    if (restarts) a.insert(a.end(), {"--max-restarts", "2", "--snapshot-every", "1"});
    return a;
  };
  Proc plain(cmd("a", false), tmp.path + "/a.log");
  ASSERT_TRUE(plain.wait(120));
  ASSERT_EQ(plain.exit_code(), 0) << plain.output();
  Proc p(cmd("b", true), tmp.path + "/b.log");
  const auto w = workers_of(p, 2);
  ASSERT_EQ(w.size(), 2u) << p.output();
  ASSERT_TRUE(wait_for_file(tmp.path + "/b/checkpoint_epoch1.safetensors", 60)) << p.output();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  kill(w[1], SIGKILL);
  ASSERT_TRUE(p.wait(120)) << p.output();
  ASSERT_EQ(p.exit_code(), 0) << p.output();
  EXPECT_NE(p.output().find("restart 1 of 2"), std::string::npos) << p.output();
  const auto x = ddp::train::load_checkpoint(tmp.path + "/a/checkpoint_epoch3.safetensors");
  const auto y = ddp::train::load_checkpoint(tmp.path + "/b/checkpoint_epoch3.safetensors");
  EXPECT_TRUE(same_bits(x.params, y.params));
  EXPECT_TRUE(same_bits(x.momentum, y.momentum));
}

// --max-restarts 1 and rank 1 killed twice: the second failure ends the job
// with the last failure's status and a message naming both.
TEST(Restarts, ARankThatKeepsFailingExhaustsTheRestartsNamingEachFailure) {
  TempDir tmp;
  const std::string tmpdir = tmp.path + "/tmp", ck = tmp.path + "/ck";
  fs::create_directories(tmpdir);
  Proc p(job(2, ck, tmp.path + "/r.json", 1, 30), tmp.path + "/log", {{"TMPDIR", tmpdir}});
  std::set<pid_t> seen;
  for (int round = 0; round < 2; ++round) {
    std::vector<pid_t> w;
    for (int i = 0; i < 1000 && w.size() < 2; ++i) {  // this round's workers: ones not seen before
      w.clear();
      for (pid_t k : children_of(p.pid))
        if (!seen.count(k)) w.push_back(k);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(w.size(), 2u) << "round " << round << "\n" << p.output();
    seen.insert(w.begin(), w.end());
    if (round == 0) {  // training, once its first snapshot is there
      ASSERT_TRUE(wait_for_file(ck + "/snapshot.safetensors", 60)) << p.output();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    kill(w[1], SIGKILL);
  }
  ASSERT_TRUE(wait_noting_workers(p, 60, seen)) << p.output();
  EXPECT_EQ(p.exit_code(), 128 + SIGKILL) << p.output();
  const std::string out = p.output();
  EXPECT_NE(out.find("the job failed 2 times, and --max-restarts 1 allows no more restarts"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("1\\. at [0-9.]+ s: rank 1 was killed by signal 9 \\(SIGKILL\\)"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("2\\. at [0-9.]+ s: rank 1 was killed by signal 9 \\(SIGKILL\\)"))) << out;
  EXPECT_NE(out.find("rank 1 failed every time"), std::string::npos) << out;
  EXPECT_NE(out.find("--resume " + ck + "/snapshot.safetensors"), std::string::npos) << out;
  for (pid_t w : seen) EXPECT_FALSE(alive(w)) << "worker " << w << " outlived the job";
  EXPECT_TRUE(fs::is_empty(tmpdir));
  EXPECT_TRUE(fs::exists(ck + "/snapshot.safetensors"));  // kept to resume from
}

// A diverged loss and a SIGTERM to the launcher are not failures: no restart.
TEST(Restarts, ADivergedRunOrAStopOnPurposeUsesNoRestart) {
  TempDir tmp;
  Proc diverged({binary("train_parallel"), "-w", "2", "-lr", "10", "-b", "8", "--limit", "2000", "-e", "1",
                 "--no-progress", "--data-dir", mnist_dir(), "--max-restarts", "2"},
                tmp.path + "/d.log");
  ASSERT_TRUE(diverged.wait(60));
  EXPECT_EQ(diverged.exit_code(), 1) << diverged.output();
  EXPECT_NE(diverged.output().find("training diverged"), std::string::npos) << diverged.output();
  EXPECT_EQ(diverged.output().find("restart"), std::string::npos) << diverged.output();

  Proc stopped(job(2, tmp.path + "/ck", tmp.path + "/r.json", 2, 30), tmp.path + "/s.log");
  ASSERT_EQ(workers_of(stopped, 2).size(), 2u) << stopped.output();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  kill(stopped.pid, SIGTERM);
  ASSERT_TRUE(stopped.wait(30));
  EXPECT_EQ(stopped.exit_code(), 128 + SIGTERM) << stopped.output();
  EXPECT_EQ(stopped.output().find("restart 1"), std::string::npos) << stopped.output();
}
