// --trace end to end: train_parallel's two ranks merged into one Chrome
// trace by rank 0 (lanes for every rank and thread, every event inside the
// traced steps, the compute lane covering each step), train_serial's
// default window, and bad --trace paths and windows refused before training.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps_test_util.h"
#include "trace_test_util.h"

using namespace apps_test;
using nlohmann::json;

namespace {

json run_traced(const std::vector<std::string>& argv, const TempDir& tmp, const std::string& name) {
  auto args = argv;
  args.insert(args.end(), {"--no-progress", "--data-dir", mnist_dir(), "--trace", tmp.path + "/" + name + ".json",
                           "--save-results", tmp.path + "/" + name + "_results.json"});
  Proc p(args, tmp.path + "/" + name + ".log");
  EXPECT_TRUE(p.wait(120)) << name << " did not finish";
  EXPECT_EQ(p.exit_code(), 0) << p.output();
  EXPECT_NE(p.output().find("trace of steps"), std::string::npos) << p.output();
  return json::parse(read_file(tmp.path + "/" + name + ".json"));  // throws if it is not JSON
}

void expect_steps(const json& doc, int pid, int first, int end) {
  const auto steps = trace_test::steps_of(doc, pid);
  ASSERT_EQ(steps.size(), static_cast<size_t>(end - first)) << "pid " << pid;
  for (int s = first; s < end; ++s) EXPECT_EQ(steps[s - first]["args"]["step"], s) << "pid " << pid;
}

}  // namespace

TEST(Trace, TwoRanksMergedIntoOneTimeline) {
  TempDir tmp;
  const json doc = run_traced(
      {binary("train_parallel"), "-w", "2", "--limit", "2560", "-e", "1", "--trace-steps", "5:9"}, tmp, "p2");
  EXPECT_EQ(doc["otherData"]["trace_steps"], json::array({5, 9}));
  EXPECT_EQ(doc["otherData"]["dropped_events"], 0);
  for (int pid : {1, 2}) expect_steps(doc, pid, 5, 9);
  const auto lanes = trace_test::lanes(doc);
  const std::set<std::string> want = {"compute", "communication", "steps"};
  EXPECT_EQ(lanes.size(), 2u);
  for (int pid : {1, 2}) EXPECT_EQ(lanes.count(pid) ? lanes.at(pid) : std::set<std::string>{}, want) << pid;

  const auto outside = trace_test::events_outside_steps(doc);
  EXPECT_TRUE(outside.empty()) << outside.size() << " events outside the traced steps, e.g. " << outside.front();
  const auto gap = trace_test::largest_compute_gap(doc);
  EXPECT_LE(gap.largest_share, 0.02) << "a gap of " << 100 * gap.largest_share << "% of " << gap.where;

  // Every bucket's all-reduce on each rank's communication lane, with its
  // bytes and algorithm; the bytes-sent counters; one clock on one machine.
  const size_t buckets = doc["otherData"]["buckets"].size();
  std::map<int, size_t> allreduces, counters;
  for (const auto& e : doc["traceEvents"]) {
    if (e["ph"] == "X" && e["cat"] == "allreduce") {
      ++allreduces[e["pid"]];
      EXPECT_EQ(e["tid"], 2);
      EXPECT_GT(e["args"]["bytes"].get<int64_t>(), 0);
      EXPECT_EQ(e["args"]["algorithm"], "bcube");
    }
    if (e["ph"] == "C") ++counters[e["pid"]];
  }
  for (int pid : {1, 2}) {
    EXPECT_EQ(allreduces[pid], 4 * buckets) << pid;
    EXPECT_EQ(counters[pid], 4 * buckets) << pid;
  }
  for (const auto& c : doc["otherData"]["clock"]["ranks"]) {
    EXPECT_TRUE(c["same_clock_as_rank_0"].get<bool>()) << c.dump();
    EXPECT_EQ(c["offset_ns"], 0);
  }

  // The results file: the wait split adds up to the wait.
  const json r = json::parse(read_file(tmp.path + "/p2_results.json"));
  for (const auto& e : r["epochs"]) {
    const double wait = e["time_breakdown_s"]["allreduce_wait"];
    const double later = e["allreduce_wait_split_s"]["later_rank"], transfer = e["allreduce_wait_split_s"]["transfer"];
    EXPECT_GE(later, 0);
    EXPECT_GE(transfer, 0);
    EXPECT_NEAR(later + transfer, wait, 1e-6 + 1e-6 * wait);
  }
}

TEST(Trace, SerialDefaultWindowAndTheLastStepsOfAShortRun) {
  TempDir tmp;
  // 1000 samples at batch 64: 16 steps; the default is 10:14.
  const json doc = run_traced({binary("train_serial"), "--limit", "1000", "-e", "1"}, tmp, "s16");
  expect_steps(doc, 1, 10, 14);
  EXPECT_EQ(trace_test::lanes(doc).at(1), (std::set<std::string>{"compute", "steps"}));
  EXPECT_TRUE(trace_test::events_outside_steps(doc).empty());
  EXPECT_LE(trace_test::largest_compute_gap(doc).largest_share, 0.02);
  // 320 samples: 5 steps a run; the last 4.
  expect_steps(run_traced({binary("train_serial"), "--limit", "320", "-e", "1"}, tmp, "s5"), 1, 1, 5);
}

TEST(Trace, BadPathsAndWindowsAreRefusedBeforeTraining) {
  TempDir tmp;
  std::filesystem::create_directory(tmp.path + "/a_directory");
  struct Case {
    std::vector<std::string> flags;
    std::string phrase;
    int status;  // 0: any failure (CLI11's own codes)
  };
  const std::vector<Case> cases = {
      {{"--trace", tmp.path + "/a_directory"}, "is a directory", 1},
      {{"--trace", "/proc/forbidden/t.json"}, "/proc/forbidden", 1},
      {{"--trace", tmp.path + "/t.json", "--trace-steps", "100:104"}, "outside the steps this run trains", 1},
      {{"--trace", tmp.path + "/t.json", "--trace-steps", "7"}, "A:B", 0},
      {{"--trace", tmp.path + "/t.json", "--trace-steps", "9:9"}, "holds no step", 0},
      {{"--trace-steps", "1:3"}, "--trace-steps needs --trace", 1},
      {{"--trace", "/dev/null"}, "is not a regular file", 1},
      {{"--trace", tmp.path + "/t.json", "--save-results", tmp.path + "/t.json"}, "name the same file", 1},
      {{"--trace", ""}, "give a file name", 0}};
  for (const char* program : {"train_serial", "train_parallel"}) {
    for (const auto& c : cases) {
      std::vector<std::string> argv = {binary(program), "--data-dir", mnist_dir(), "--limit", "640", "-e", "1"};
      argv.insert(argv.end(), c.flags.begin(), c.flags.end());
      Proc p(argv, tmp.path + "/bad.log");
      ASSERT_TRUE(p.wait(20));
      const std::string what = std::string(program) + " " + c.flags.back();
      if (c.status != 0) {
        EXPECT_EQ(p.exit_code(), c.status) << what << "\n" << p.output();
      }
      EXPECT_NE(p.exit_code(), 0) << what;
      EXPECT_NE(p.output().find(c.phrase), std::string::npos) << what << "\n" << p.output();
      EXPECT_EQ(p.output().find("epoch 1"), std::string::npos) << what << ": it trained\n" << p.output();
      EXPECT_LT(p.seconds, 5.0) << what;
    }
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.path + "/t.json"));
}

// The trace is a diagnostic: a file it cannot write (here: larger than the
// process may write, as on a full disk) is a warning, and training goes on.
TEST(Trace, AFullDiskForTheTraceIsAWarningAndTrainingGoesOn) {
  TempDir tmp;
  Proc p({binary("train_serial"), "--data-dir", mnist_dir(), "--limit", "640", "-e", "1", "--no-progress", "--trace",
          tmp.path + "/t.json"},
         tmp.path + "/full.log", {}, /*file_size_limit=*/4096);  // the log fits, the trace (~11 KB) not
  ASSERT_TRUE(p.wait(60));
  EXPECT_EQ(p.exit_code(), 0) << p.output();
  EXPECT_NE(p.output().find("warning: the trace was not written, training goes on"), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("final test accuracy"), std::string::npos) << p.output();
  EXPECT_FALSE(std::filesystem::exists(tmp.path + "/t.json"));
}
