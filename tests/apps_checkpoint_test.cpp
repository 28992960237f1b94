// Nothing lost, nothing hangs: stop and resume, refused checkpoints, killed
// ranks, and a full disk, with the real programs as child processes.
#include <gtest/gtest.h>

#include <random>

#include "apps_test_util.h"
#include "train/checkpoint.h"

using namespace apps_test;
namespace fs = std::filesystem;

namespace {

// mode: more flags (a mitigation of train/stepper.h), or none.
std::vector<std::string> trainer(const std::string& program, int world, const std::string& ckdir, int epochs,
                                 int64_t limit, const std::vector<std::string>& mode = {}) {
  std::vector<std::string> a = {binary(program), "-e", std::to_string(epochs), "--limit", std::to_string(limit),
                                "--no-progress", "--data-dir", mnist_dir(), "--checkpoint-dir", ckdir};
  if (world > 0) a.insert(a.end(), {"-w", std::to_string(world)});
  a.insert(a.end(), mode.begin(), mode.end());
  return a;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Runs 2 epochs, interrupted by `sig` during epoch 2, and resumed, with
// checkpoints into `b`.
void stop_and_resume(const std::string& program, int world, int sig, const std::string& b, int64_t limit,
                     const std::vector<std::string>& mode) {
  const std::string tmp = std::filesystem::path(b).parent_path().string();
  stop_during_epoch_2(trainer(program, world, b, 2, limit, mode), b, sig, tmp + "/first.log");

  auto resume = trainer(program, world, b, 2, limit, mode);
  resume.insert(resume.end(), {"--resume", "auto"});
  Proc second(resume, tmp + "/second.log");
  EXPECT_TRUE(second.wait(120));
  EXPECT_EQ(second.exit_code(), 0) << second.output();
}

// Runs to the end; then again, interrupted by `sig` during epoch 2, and
// resumed. Returns the largest parameter and momentum difference.
float interrupt_and_resume(const std::string& program, int world, int sig, const std::vector<std::string>& mode = {}) {
  TempDir tmp;
  const std::string a = tmp.path + "/a", b = tmp.path + "/b";
  const int64_t limit = 6400 * std::max(world, 1);
  Proc full(trainer(program, world, a, 2, limit, mode), tmp.path + "/full.log");
  EXPECT_TRUE(full.wait(120));
  EXPECT_EQ(full.exit_code(), 0) << full.output();
  stop_and_resume(program, world, sig, b, limit, mode);

  const auto x = ddp::train::load_checkpoint(a + "/checkpoint_epoch2.safetensors");
  const auto y = ddp::train::load_checkpoint(b + "/checkpoint_epoch2.safetensors");
  return std::max(max_abs_diff(x.params, y.params), max_abs_diff(x.momentum, y.momentum));
}

}  // namespace

TEST(Resume, SerialCtrlCThenResumeGivesTheSameModelBitForBit) {
  EXPECT_EQ(interrupt_and_resume("train_serial", 0, SIGINT), 0.f);
}

TEST(Resume, ParallelSigtermThenResumeGivesTheSameModel) {
  EXPECT_LE(interrupt_and_resume("train_parallel", 2, SIGTERM), 1e-6f);
}

// A stop inside an accumulation group goes back to the group's start (no
// update was applied since), so the resumed run replays the group.
TEST(Resume, AccumulatingSigtermThenResumeGivesTheSameModel) {
  EXPECT_LE(interrupt_and_resume("train_parallel", 2, SIGTERM, {"--accumulate", "3"}), 1e-6f);
}

// Local SGD averages and stale gradients drain at a stop as at an epoch's
// end (docs/mitigations.md): the runs stop cleanly and resume, not to the
// same bits.
TEST(Resume, LocalSgdAndStaleGradientsStopOnSigintAndResume) {
  for (const std::vector<std::string>& mode :
       {std::vector<std::string>{"--sync-every", "8"}, {"--stale-gradients", "1"}}) {
    SCOPED_TRACE(mode[0]);
    TempDir tmp;
    stop_and_resume("train_parallel", 2, SIGINT, tmp.path + "/b", 6400, mode);
  }
}

// With one step an epoch every stop comes in an epoch's last step: the run
// ends that epoch (evaluation, its checkpoint) before it stops, so the
// checkpoint is an epoch's and resuming it gives the uninterrupted run's
// model. (A checkpoint at "all of the epoch's steps done" once resumed into
// an internal error: NodeRestarts.CtrlCOnOneNode... on a loaded machine.)
TEST(Resume, AStopInAnEpochsLastStepEndsThatEpochAndResumesBitForBit) {
  for (const auto& [program, world] : {std::pair<std::string, int>{"train_serial", 0}, {"train_parallel", 2}}) {
    SCOPED_TRACE(program);
    TempDir tmp;
    const int epochs = 40;
    const int64_t limit = 64 * std::max(world, 1);  // one step of batch 64 a rank
    const std::vector<std::string> quick = {"--test-limit", "100"};
    ASSERT_EQ(run_cmd(trainer(program, world, tmp.path + "/a", epochs, limit, quick)), 0);
    Proc first(trainer(program, world, tmp.path + "/b", epochs, limit, quick), tmp.path + "/first.log");
    ASSERT_TRUE(wait_for_file(tmp.path + "/b/checkpoint_epoch2.safetensors", 60)) << first.output();
    kill(first.pid, SIGINT);
    ASSERT_TRUE(first.wait(20));
    ASSERT_EQ(first.exit_code(), 130) << first.output();
    EXPECT_NE(first.output().find("at the end of epoch"), std::string::npos) << first.output();
    const std::string stopped_at = ddp::train::newest_checkpoint(tmp.path + "/b");
    EXPECT_EQ(stopped_at.find("_step"), std::string::npos) << stopped_at;
    auto resume = trainer(program, world, tmp.path + "/b", epochs, limit, quick);
    resume.insert(resume.end(), {"--resume", "auto"});
    ASSERT_EQ(run_cmd(resume, tmp.path + "/second.log"), 0) << read_file(tmp.path + "/second.log");
    const std::string last = "/checkpoint_epoch" + std::to_string(epochs) + ".safetensors";
    const auto x = ddp::train::load_checkpoint(tmp.path + "/a" + last);
    const auto y = ddp::train::load_checkpoint(tmp.path + "/b" + last);
    EXPECT_TRUE(same_bits(x.params, y.params));
    EXPECT_TRUE(same_bits(x.momentum, y.momentum));
  }
}

TEST(Resume, ACheckpointOfAnotherConfigurationIsRefusedSayingWhatDiffers) {
  TempDir tmp;
  Proc make(trainer("train_serial", 0, tmp.path, 1, 640), tmp.path + "/make.log");
  ASSERT_TRUE(make.wait(60));
  ASSERT_EQ(make.exit_code(), 0) << make.output();
  auto other = trainer("train_serial", 0, tmp.path, 2, 640);
  other.insert(other.end(), {"--resume", "auto", "-b", "32"});
  Proc p(other, tmp.path + "/other.log");
  ASSERT_TRUE(p.wait(30));
  EXPECT_EQ(p.exit_code(), 1);
  EXPECT_NE(p.output().find("batch_size is 64 in the checkpoint but 32"), std::string::npos) << p.output();

}

// A checkpoint of another world size is not another configuration: a serial
// checkpoint continues on 2 ranks and the run says so (the refusal this
// replaces: issue #18).
TEST(Resume, ACheckpointOfAnotherWorldSizeContinuesOnTheNewWorld) {
  TempDir tmp;
  Proc make(trainer("train_serial", 0, tmp.path, 1, 640), tmp.path + "/make.log");
  ASSERT_TRUE(make.wait(60));
  ASSERT_EQ(make.exit_code(), 0) << make.output();
  auto world = trainer("train_parallel", 2, tmp.path, 2, 640);
  world.insert(world.end(), {"--resume", "auto", "--save-results", tmp.path + "/r.json"});
  Proc q(world, tmp.path + "/world.log");
  ASSERT_TRUE(q.wait(60));
  EXPECT_EQ(q.exit_code(), 0) << q.output();
  EXPECT_NE(q.output().find("it was written by 1 rank(s), this run has 2"), std::string::npos) << q.output();
  EXPECT_NE(read_file(tmp.path + "/r.json").find("\"resumed_world_size\": 1"), std::string::npos);
}

// Fault injection: a random rank is SIGKILLed at a random moment, many times.
TEST(Faults, KillingARandomRankAtARandomMomentNeverHangsOrLosesTheCheckpoint) {
  std::mt19937 rng(20261125);
  const int trials = 20;
  for (int t = 0; t < trials; ++t) {
    TempDir tmp;
    const int world = 2 + static_cast<int>(rng() % 2);
    const std::string ck = tmp.path + "/ck";
    Proc job(trainer("train_parallel", world, ck, 50, 1280), tmp.path + "/job.log", {{"TMPDIR", tmp.path}});
    std::vector<pid_t> workers;
    for (int i = 0; i < 400 && static_cast<int>(workers.size()) < world; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      workers = children_of(job.pid);
    }
    ASSERT_EQ(static_cast<int>(workers.size()), world) << job.output();
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 1500));
    const int victim = static_cast<int>(rng() % world);
    const auto killed_at = std::chrono::steady_clock::now();
    kill(workers[victim], SIGKILL);
    ASSERT_TRUE(job.wait(30)) << "trial " << t << ": the job hung";
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
    const std::string out = job.output();
    EXPECT_LT(took, 10.0) << "trial " << t;
    EXPECT_NE(job.exit_code(), 0) << "trial " << t << "\n" << out;
    EXPECT_NE(out.find("rank"), std::string::npos) << "trial " << t << "\n" << out;
    for (pid_t w : workers) EXPECT_FALSE(alive(w)) << "trial " << t << ": worker " << w << " outlived the job";
    for (const auto& entry : fs::directory_iterator(tmp.path)) {
      const std::string name = entry.path().filename().string();
      EXPECT_TRUE(name == "job.log" || name == "ck") << "trial " << t << ": left behind " << name;
    }
    if (fs::exists(ck) && !fs::is_empty(ck)) {
      const std::string last = ddp::train::newest_checkpoint(ck);
      EXPECT_NO_THROW(ddp::train::load_checkpoint(last)) << "trial " << t << ": " << last << " does not load";
      for (const auto& entry : fs::directory_iterator(ck))
        EXPECT_EQ(entry.path().extension(), ".safetensors") << "trial " << t << ": temp file " << entry.path();
    }
  }
}

TEST(FullDisk, ACheckpointThatDoesNotFitFailsClearlyAndKeepsThePreviousOne) {
  TempDir tmp;
  Proc make(trainer("train_serial", 0, tmp.path, 1, 640), tmp.path + "/make.log");
  ASSERT_TRUE(make.wait(60));
  ASSERT_EQ(make.exit_code(), 0) << make.output();
  const std::string previous = tmp.path + "/checkpoint_epoch1.safetensors";
  const std::string before = read_file(previous);

  auto more = trainer("train_serial", 0, tmp.path, 2, 640);
  more.insert(more.end(), {"--resume", "auto"});
  Proc p(more, tmp.path + "/more.log", {}, 1 << 20);  // a checkpoint is 3.4 MB
  ASSERT_TRUE(p.wait(60));
  EXPECT_EQ(p.exit_code(), 1) << p.output();
  EXPECT_NE(p.output().find("file too large"), std::string::npos) << p.output();
  EXPECT_EQ(read_file(previous), before);
  EXPECT_FALSE(fs::exists(tmp.path + "/checkpoint_epoch2.safetensors"));
  for (const auto& entry : fs::directory_iterator(tmp.path))
    EXPECT_EQ(entry.path().string().find(".tmp"), std::string::npos) << "temp file left: " << entry.path();
}

TEST(FullDisk, AResultsFileThatDoesNotFitFailsClearlyAndKeepsThePreviousOne) {
  TempDir tmp;
  const std::string results = tmp.path + "/results.json";
  { std::ofstream(results) << "{\"previous\": true}\n"; }
  Proc p({binary("train_serial"), "-e", "1", "--limit", "640", "--no-progress", "--data-dir", mnist_dir(),
          "--save-results", results},
         tmp.path + "/log", {}, 1024);  // the results JSON is larger than 1 KiB
  ASSERT_TRUE(p.wait(60));
  EXPECT_EQ(p.exit_code(), 1) << p.output();
  EXPECT_NE(p.output().find(results + ": cannot write: file too large"), std::string::npos) << p.output();
  EXPECT_EQ(read_file(results), "{\"previous\": true}\n");
}
