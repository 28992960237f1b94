// Issue #20, faults 1 and 2, with the real programs.
//  1. Every check runs before the first step, however the ranks were started:
//     by our launcher, by mpirun, or by a torchrun-style launcher meeting at
//     --rendezvous (a bad results path, a checkpoint of another run, flags
//     that contradict each other).
//  2. A diverging run stops at the first NaN or infinite loss, names the
//     epoch and step, suggests a lower learning rate, exits non-zero and
//     writes neither results nor a checkpoint.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <memory>

#include "apps_test_util.h"

using namespace apps_test;

namespace {

using Env = std::vector<std::pair<std::string, std::string>>;
using Args = std::vector<std::string>;

Args concat(Args a, const Args& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const Args kSmall = {"--limit", "640", "-e", "1", "--no-progress"};

// How the ranks of a two-rank job are started.
struct Start {
  std::string name;
  bool available;
  // Runs train_parallel with `flags` as two ranks; returns every process's
  // output and the worst exit status.
  std::function<std::pair<std::string, int>(const TempDir&, const Args&)> run;
};

std::pair<std::string, int> one(const TempDir& tmp, const Args& argv, const Env& env, const std::string& name) {
  Proc p(argv, tmp.path + "/" + name + ".log", env);
  EXPECT_TRUE(p.wait(120)) << name << " hung:\n" << p.output();
  return {p.output(), p.exit_code()};
}

std::vector<Start> starts() {
  const Args program = {binary("train_parallel"), "--data-dir", mnist_dir()};
  return {
      {"our launcher", true,
       [program](const TempDir& tmp, const Args& flags) {
         return one(tmp, concat(concat(program, {"-w", "2"}), flags), {}, "launcher");
       }},
      {"mpirun", !which("mpirun").empty(),
       [program](const TempDir& tmp, const Args& flags) {
         return one(tmp, concat(concat({which("mpirun"), "-np", "2", "--oversubscribe"}, program),
                                concat({"--backend", "mpi"}, flags)),
                    {{"OMPI_ALLOW_RUN_AS_ROOT", "1"}, {"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"}}, "mpirun");
       }},
      {"torchrun style", true,
       [program](const TempDir& tmp, const Args& flags) {
         std::vector<std::unique_ptr<Proc>> ranks;
         for (int r = 1; r >= 0; --r)
           ranks.push_back(std::make_unique<Proc>(
               concat(concat(program, {"--rendezvous", "file://" + tmp.path, "--timeout", "30"}), flags),
               tmp.path + "/rank" + std::to_string(r) + ".log",
               Env{{"RANK", std::to_string(r)}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", std::to_string(r)},
                   {"LOCAL_WORLD_SIZE", "2"}}));
         std::string out;
         int worst = 0;
         for (auto& p : ranks) {
           EXPECT_TRUE(p->wait(120)) << p->output();
           out += p->output();
           worst = std::max(worst, p->exit_code());
         }
         return std::pair{out, worst};
       }},
  };
}

// A checkpoint of a one-process run with seed 7: another configuration (a
// world size of its own alone is not: the run resumes on the new world).
std::string serial_checkpoint(const TempDir& tmp) {
  const std::string dir = tmp.path + "/serial-ck";
  Proc p({binary("train_serial"), "--data-dir", mnist_dir(), "--limit", "640", "-e", "1", "--no-progress",
          "--seed", "7", "--checkpoint-dir", dir},
         tmp.path + "/serial.log");
  EXPECT_TRUE(p.wait(120));
  EXPECT_EQ(p.exit_code(), 0) << p.output();
  return dir + "/checkpoint_epoch1.safetensors";
}

TEST(EveryStart, RefusesBadInputsBeforeTheFirstStep) {
  for (const auto& start : starts()) {
    if (!start.available) {
      std::cout << "skipping " << start.name << ": not installed\n";
      continue;
    }
    TempDir tmp;
    std::ofstream(tmp.path + "/f") << "";
    struct Case {
      std::string what;
      Args flags;
      std::string says;
    };
    const std::vector<Case> cases = {
        {"a results path under a file", {"--save-results", tmp.path + "/f/r.json"}, "cannot create directory"},
        {"a checkpoint of another run", {"--resume", serial_checkpoint(tmp)}, "seed is 7 in the checkpoint"},
        {"two addresses to listen on", {"--host", "127.0.0.1", "--iface", "lo"}, "--host and --iface both"},
        {"more warm-up epochs than epochs", {"--warmup-epochs", "3", "--lr-scaling", "linear"}, "--warmup-epochs 3"},
    };
    for (const auto& c : cases) {
      const auto [out, status] = start.run(tmp, concat(kSmall, c.flags));
      EXPECT_NE(status, 0) << start.name << ", " << c.what << ":\n" << out;
      EXPECT_NE(out.find(c.says), std::string::npos) << start.name << ", " << c.what << ":\n" << out;
      EXPECT_EQ(out.find("epoch 1/1"), std::string::npos) << start.name << ", " << c.what << " trained:\n" << out;
    }
  }
}

// The input, serially and at two ranks: stops in epoch 1 naming the
// step, suggests a lower rate, exits 1, and leaves no results and no
// checkpoint behind.
TEST(Diverging, StopsAtTheFirstNonFiniteLossOnEveryRank) {
  const std::vector<Args> programs = {{binary("train_serial")}, {binary("train_parallel"), "-w", "2"}};
  for (const auto& program : programs) {
    TempDir tmp;
    Proc p(concat(program, {"-lr", "10", "-b", "8", "--limit", "2000", "-e", "1", "--no-progress", "--data-dir",
                            mnist_dir(), "--save-results", tmp.path + "/r.json", "--checkpoint-dir",
                            tmp.path + "/ck", "--checkpoint-every", "1"}),
           tmp.path + "/log");
    ASSERT_TRUE(p.wait(120)) << p.output();
    const std::string out = p.output();
    EXPECT_NE(p.exit_code(), 0) << out;
    EXPECT_NE(out.find("training diverged in epoch 1, step "), std::string::npos) << out;
    EXPECT_NE(out.find("-lr 1"), std::string::npos) << out;
    EXPECT_EQ(out.find("epoch 1/1"), std::string::npos) << out;
    EXPECT_FALSE(std::filesystem::exists(tmp.path + "/r.json")) << out;
    EXPECT_TRUE(!std::filesystem::exists(tmp.path + "/ck") || std::filesystem::is_empty(tmp.path + "/ck")) << out;
  }
}

// With --lr-scaling linear at two ranks, the hint offers the warm-up too.
TEST(Diverging, AtTwoRanksWithLinearScalingSuggestsAWarmUp) {
  TempDir tmp;
  Proc p({binary("train_parallel"), "-w", "2", "-lr", "5", "--lr-scaling", "linear", "-b", "8", "--limit", "2000",
          "-e", "1", "--no-progress", "--data-dir", mnist_dir()},
         tmp.path + "/log");
  ASSERT_TRUE(p.wait(120)) << p.output();
  EXPECT_NE(p.exit_code(), 0) << p.output();
  EXPECT_NE(p.output().find("--warmup-epochs"), std::string::npos) << p.output();
}

}  // namespace
