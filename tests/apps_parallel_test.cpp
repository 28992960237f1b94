// train_parallel end to end: real processes, real sockets, real MNIST.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "apps_test_util.h"

using namespace apps_test;
using nlohmann::json;

namespace {

json run_ok(const std::vector<std::string>& argv, const TempDir& tmp, const std::string& name, double limit = 120) {
  const std::string out = tmp.path + "/" + name + ".json";
  auto args = argv;
  args.insert(args.end(), {"--save-results", out, "--no-progress", "--data-dir", mnist_dir()});
  Proc p(args, tmp.path + "/" + name + ".log");
  EXPECT_TRUE(p.wait(limit)) << name << " did not finish in " << limit << " s";
  EXPECT_EQ(p.exit_code(), 0) << p.output();
  return json::parse(read_file(out));
}

// With dropout off, N ranks at batch B take exactly the steps of one process
// at batch N*B: the same samples, the same averaged gradient.
void expect_matches_serial(int world) {
  TempDir tmp;
  const std::string per_rank = std::to_string(128 / world);
  const json serial = run_ok({binary("train_serial"), "-b", "128", "--dropout", "0", "--limit", "1280", "-e", "2"},
                             tmp, "serial");
  const json parallel = run_ok({binary("train_parallel"), "-w", std::to_string(world), "-b", per_rank, "--dropout",
                                "0", "--limit", "1280", "-e", "2"},
                               tmp, "parallel");
  const auto& a = serial["step_losses"];
  const auto& b = parallel["step_losses"];
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(a[i].get<double>(), b[i].get<double>(), 2e-4 * std::max(1.0, a[i].get<double>())) << "step " << i;
  EXPECT_NEAR(serial["epochs"][1]["test_loss"].get<double>(), parallel["epochs"][1]["test_loss"].get<double>(), 2e-4);
  EXPECT_EQ(parallel["world_size"], world);
}

}  // namespace

TEST(TrainParallel, TwoRanksAtBatch64MatchSerialAtBatch128) { expect_matches_serial(2); }
TEST(TrainParallel, FourRanksAtBatch32MatchSerialAtBatch128) { expect_matches_serial(4); }

// The trainer checks after every epoch that all ranks hold bit-identical
// parameters, and fails the run if not; 3 ranks also exercise uneven shards.
TEST(TrainParallel, ThreeRanksFinishWithIdenticalParameters) {
  TempDir tmp;
  const json r = run_ok({binary("train_parallel"), "-w", "3", "--limit", "1000", "-e", "2"}, tmp, "w3");
  EXPECT_EQ(r["world_size"], 3);
  EXPECT_EQ(r["samples_per_epoch"], 1002);  // 334 per rank: DistributedSampler pads by wrapping around
  EXPECT_EQ(r["per_rank"].size(), 3u);
  EXPECT_GT(r["final_test_accuracy"].get<double>(), 0.5);
}

TEST(TrainParallel, TwoJobsStartedTogetherBothSucceed) {
  TempDir tmp;
  auto cmd = [&](const std::string& name) {
    return std::vector<std::string>{binary("train_parallel"), "-w", "2", "--limit", "640", "-e", "1", "--no-progress",
                                    "--data-dir", mnist_dir(), "--save-results", tmp.path + "/" + name + ".json"};
  };
  Proc a(cmd("a"), tmp.path + "/a.log"), b(cmd("b"), tmp.path + "/b.log");
  ASSERT_TRUE(a.wait(120));
  ASSERT_TRUE(b.wait(120));
  EXPECT_EQ(a.exit_code(), 0) << a.output();
  EXPECT_EQ(b.exit_code(), 0) << b.output();
}

TEST(TrainParallel, AKilledRankEndsTheJobWithinTenSecondsAndNamesIt) {
  TempDir tmp;
  Proc job({binary("train_parallel"), "-w", "2", "-e", "50", "--limit", "6400", "--no-progress", "--data-dir",
            mnist_dir()},
           tmp.path + "/job.log", {{"TMPDIR", tmp.path}});
  std::vector<pid_t> workers;
  for (int i = 0; i < 200 && workers.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    workers = children_of(job.pid);
  }
  ASSERT_EQ(workers.size(), 2u) << job.output();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // let training start
  const auto killed_at = std::chrono::steady_clock::now();
  kill(workers[1], SIGKILL);
  ASSERT_TRUE(job.wait(60));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_LT(took, 10.0);
  EXPECT_NE(job.exit_code(), 0);
  const std::string out = job.output();
  EXPECT_NE(out.find("rank"), std::string::npos) << out;
  EXPECT_NE(out.find("SIGKILL"), std::string::npos) << out;
  for (pid_t w : workers) EXPECT_FALSE(alive(w)) << "worker " << w << " outlived the job";
  // Nothing left in the job's TMPDIR: the rendezvous directory is gone.
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path + "/") ||
              std::distance(std::filesystem::directory_iterator(tmp.path), {}) == 1)  // job.log
      << "leftovers in " << tmp.path;
}

TEST(TrainParallel, BadFlagsAreRejectedBeforeAnyWork) {
  TempDir tmp;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"-w", "0"}, "world-size"},       {{"-w", "65"}, "world-size"},  {{"-b", "0"}, "batch-size"},
      {{"-lr", "nan"}, "finite"},        {{"-e", "-1"}, "epochs"},       {{"--dataset", "cifar"}, "dataset"},
      {{"--threads", "0"}, "threads"},   {{"--dropout", "1.5"}, "dropout"}};
  for (const auto& [flags, phrase] : cases) {
    std::vector<std::string> argv = {binary("train_parallel")};
    argv.insert(argv.end(), flags.begin(), flags.end());
    Proc p(argv, tmp.path + "/bad.log");
    ASSERT_TRUE(p.wait(10));
    EXPECT_NE(p.exit_code(), 0) << flags[0] << " " << flags[1];
    EXPECT_NE(p.output().find(phrase), std::string::npos) << p.output();
    EXPECT_LT(p.seconds, 2.0) << "rejecting a bad flag took " << p.seconds << " s";
  }
}

TEST(TrainSerial, MissingDataSaysHowToFetchIt) {
  TempDir tmp;
  Proc p({binary("train_serial"), "--data-dir", tmp.path + "/nowhere"}, tmp.path + "/log");
  ASSERT_TRUE(p.wait(10));
  EXPECT_EQ(p.exit_code(), 1);
  EXPECT_NE(p.output().find("fetch_data.sh"), std::string::npos) << p.output();
}

TEST(TrainSerial, UnwritableResultsPathFailsBeforeTraining) {
  TempDir tmp;
  Proc p({binary("train_serial"), "--data-dir", mnist_dir(), "--save-results", "/proc/forbidden/r.json"},
         tmp.path + "/log");
  ASSERT_TRUE(p.wait(10));
  EXPECT_EQ(p.exit_code(), 1);
  EXPECT_LT(p.seconds, 3.0);
  EXPECT_NE(p.output().find("/proc/forbidden"), std::string::npos) << p.output();
}
