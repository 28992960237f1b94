// Resuming a checkpoint on another number of ranks (issue #18): a 4-rank
// run stopped during its epoch continues on 2 ranks and on 1; every sample
// of the interrupted epoch is trained exactly once, apart from the padding
// of the new world's shards (data/sampler.h), as the ranks' sample logs
// (DDP_SAMPLE_LOG) show; with --lr-scaling linear the rate follows the new
// world, and the results say the world changed.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "apps_test_util.h"
#include "train/checkpoint.h"

using namespace apps_test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kSamples = 6400;  // 200 steps of batch 8 at 4 ranks
constexpr int kBatch = 8;

std::vector<std::string> run(int world, const std::string& dir) {
  return {binary("train_parallel"), "-w", std::to_string(world), "-b", std::to_string(kBatch), "--limit",
          std::to_string(kSamples), "-e", "1", "--lr-scaling", "linear", "--no-progress", "--data-dir", mnist_dir(),
          "--checkpoint-dir", dir, "--save-results", dir + "/r.json"};
}

// How often each sample was trained in epoch 0, from the logs log.<rank>;
// `lines`: the rank-steps logged.
std::map<int64_t, int> trained(const std::string& log, int world, int64_t& lines) {
  std::map<int64_t, int> count;
  for (int r = 0; r < world; ++r) {
    std::istringstream in(read_file(log + "." + std::to_string(r)));
    for (std::string line; std::getline(in, line); ++lines) {
      std::istringstream f(line);
      int epoch = 0;
      long long step = 0, id = 0;
      f >> epoch >> step;
      EXPECT_EQ(epoch, 0) << line;
      while (f >> id) ++count[id];
    }
  }
  return count;
}

}  // namespace

TEST(WorldChange, AFourRankCheckpointResumesOnTwoAndOneTrainingEachSampleOnce) {
  TempDir tmp;
  const std::string four = tmp.path + "/four";
  Proc a(run(4, four), tmp.path + "/four.log", {{"DDP_SAMPLE_LOG", tmp.path + "/a"}});
  auto steps_logged = [&] {
    const std::string text = read_file(tmp.path + "/a.0");
    return std::count(text.begin(), text.end(), '\n');
  };
  for (int i = 0; i < 3000 && steps_logged() < 5; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  kill(a.pid, SIGTERM);  // some steps later, in the first half of the epoch
  ASSERT_TRUE(a.wait(60));
  ASSERT_EQ(a.exit_code(), 128 + SIGTERM) << a.output();
  const std::string ck = ddp::train::newest_checkpoint(four);
  ASSERT_NE(ck.find("_step"), std::string::npos) << "expected a mid-epoch checkpoint, got " << ck;
  int64_t lines_before = 0;
  const auto before = trained(tmp.path + "/a", 4, lines_before);
  const int64_t done = lines_before * kBatch;  // 4 ranks x S steps x B

  for (int next : {2, 1}) {
    SCOPED_TRACE(std::to_string(next) + " rank(s)");
    const std::string dir = tmp.path + "/w" + std::to_string(next), log = tmp.path + "/b" + std::to_string(next);
    auto cmd = run(next, dir);
    cmd.insert(cmd.end(), {"--resume", ck});
    Proc b(cmd, dir + ".log", {{"DDP_SAMPLE_LOG", log}});
    ASSERT_TRUE(b.wait(120));
    ASSERT_EQ(b.exit_code(), 0) << b.output();
    EXPECT_NE(b.output().find("it was written by 4 rank(s), this run has " + std::to_string(next)),
              std::string::npos)
        << b.output();

    int64_t lines_after = 0;
    auto count = trained(log, next, lines_after);
    for (const auto& [id, k] : before) count[id] += k;
    const int64_t padding = (next - (kSamples - done) % next) % next;
    int64_t extra = 0;
    for (int64_t id = 0; id < kSamples; ++id) {
      const int k = count.count(id) ? count[id] : 0;
      EXPECT_TRUE(k == 1 || k == 2) << "sample " << id << " trained " << k << " times";
      extra += k - 1;
    }
    EXPECT_EQ(static_cast<int64_t>(count.size()), kSamples);
    EXPECT_EQ(extra, padding) << "samples trained twice: only the new world's padding may be";

    const json r = json::parse(read_file(dir + "/r.json"));
    EXPECT_EQ(r["resumed_world_size"], 4);
    EXPECT_EQ(r["world_size"], next);
    EXPECT_DOUBLE_EQ(r["epochs"][0]["learning_rate"].get<double>(), 0.01 * next);  // linear scaling follows N'
    EXPECT_EQ(r["step_losses"].size(), static_cast<size_t>(lines_before / 4 + lines_after / next));
  }
}
