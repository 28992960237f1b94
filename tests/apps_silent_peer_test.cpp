// Issue #20, fault 3: a rank that goes silent (stopped, killed) is named, not
// the rank that waited for it, and every hint of every timeout or dead-peer
// message names a flag or variable that works (with --timeout given, not
// DDP_GLOO_TIMEOUT_S, which --timeout overrides). One table: how the job is
// started, what happens to which rank, what the messages must say.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <set>

#include "apps_test_util.h"

using namespace apps_test;

namespace {

using Env = std::vector<std::pair<std::string, std::string>>;
using Args = std::vector<std::string>;

// The value of `var` in a process's environment ("" if unset or unreadable).
std::string env_of(pid_t pid, const std::string& var) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
  std::string entry;
  while (std::getline(in, entry, '\0'))
    if (entry.rfind(var + "=", 0) == 0) return entry.substr(var.size() + 1);
  return "";
}

// The descendant of `root` whose `var` is `rank` (-1 if none yet).
pid_t rank_pid(pid_t root, const std::string& var, int rank) {
  std::vector<pid_t> todo = {root};
  while (!todo.empty()) {
    const pid_t p = todo.back();
    todo.pop_back();
    for (pid_t c : children_of(p)) {
      if (env_of(c, var) == std::to_string(rank)) return c;
      todo.push_back(c);
    }
  }
  return -1;
}

// Every "--flag" the fix lines name, and whether the program knows it.
std::set<std::string> unknown_flags_in_hints(const std::string& out, const std::string& help) {
  std::set<std::string> unknown;
  std::istringstream lines(out);
  const std::regex flag("--[a-z][a-z-]*");
  for (std::string line; std::getline(lines, line);) {
    if (line.find("fix:") == std::string::npos) continue;
    for (std::sregex_iterator it(line.begin(), line.end(), flag), end; it != end; ++it)
      if (help.find(it->str()) == std::string::npos) unknown.insert(it->str());
  }
  return unknown;
}

struct Case {
  std::string name;
  bool available;
  Args argv;
  Env env;
  std::string rank_var;  // how the victim is found: its rank variable
  int victim;            // the rank that goes silent (-1: none, the job ends by itself)
  int signal;            // what it gets
  std::vector<std::string> says;
};

TEST(SilentPeer, IsNamedAndEveryHintNamesASettingThatWorks) {
  TempDir tmp;
  const std::string tp = binary("train_parallel");
  const Args data = {"--data-dir", mnist_dir(), "--no-progress", "--limit", "25600", "-e", "3", "--timeout", "3"};
  auto args = [&](Args a) {
    a.insert(a.end(), data.begin(), data.end());
    return a;
  };
  const Env root = {{"OMPI_ALLOW_RUN_AS_ROOT", "1"}, {"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"}};
  const std::vector<Case> cases = {
      {"gloo, 2 ranks, rank 1 stopped", true, args({tp, "-w", "2"}), {}, "RANK", 1, SIGSTOP,
       {"rank 1 went silent", "rank 1 sent nothing for 3 s", "--timeout"}},
      {"gloo, 3 ranks, rank 1 stopped", true, args({tp, "-w", "3"}), {}, "RANK", 1, SIGSTOP,
       {"rank 1 went silent", "--timeout"}},
      {"gloo, 3 ranks, rank 2 killed", true, args({tp, "-w", "3"}), {}, "RANK", 2, SIGKILL,
       {"rank 2 was killed by signal 9"}},
      // The mitigations (train/stepper.h): the per-step flags' all-reduce,
      // or the all-reduce in flight behind the next step, finds the silence.
      {"gloo, 2 ranks, --accumulate 8, rank 1 stopped", true, args({tp, "-w", "2", "--accumulate", "8"}), {}, "RANK",
       1, SIGSTOP, {"rank 1 went silent", "--timeout"}},
      {"gloo, 2 ranks, --sync-every 8, rank 1 stopped", true, args({tp, "-w", "2", "--sync-every", "8"}), {}, "RANK",
       1, SIGSTOP, {"rank 1 went silent", "--timeout"}},
      {"gloo, 2 ranks, --stale-gradients 1, rank 1 stopped", true, args({tp, "-w", "2", "--stale-gradients", "1"}), {},
       "RANK", 1, SIGSTOP, {"rank 1 went silent", "--timeout"}},
      {"gloo, 2 ranks, --grad-compression powersgd, rank 1 stopped", true,
       args({tp, "-w", "2", "--grad-compression", "powersgd", "--powersgd-start-step", "0"}), {}, "RANK", 1, SIGSTOP,
       {"rank 1 went silent", "--timeout"}},
      {"mpi, 2 ranks, rank 1 stopped", !which("mpirun").empty(),
       args({which("mpirun"), "-np", "2", "--oversubscribe", tp, "--backend", "mpi"}), root,
       "OMPI_COMM_WORLD_RANK", 1, SIGSTOP, {"rank 1 sent nothing", "--timeout"}},
      {"gloo, torchrun style, rank 1 never starts", true,
       args({tp, "--rendezvous", "file://" + tmp.path}), {{"RANK", "0"}, {"WORLD_SIZE", "2"}}, "", -1, 0,
       {"did not join", "(missing: 1)", "--timeout"}},
  };
  Proc help_proc({tp, "--help"}, tmp.path + "/help.log");
  ASSERT_TRUE(help_proc.wait(30));
  const std::string help = help_proc.output();
  for (const auto& c : cases) {
    if (!c.available) {
      std::cout << "skipping " << c.name << ": not installed\n";
      continue;
    }
    Proc job(c.argv, tmp.path + "/job.log", c.env);
    pid_t victim = -1;
    if (c.victim >= 0) {
      for (int i = 0; i < 500 && victim < 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        victim = rank_pid(job.pid, c.rank_var, c.victim);
      }
      ASSERT_GT(victim, 0) << c.name << ":\n" << job.output();
      // Past the rendezvous and loading (under half a second here): training
      // (3 epochs of 25,600 samples: many seconds).
      std::this_thread::sleep_for(std::chrono::seconds(1));
      kill(victim, c.signal);
    }
    const bool ended = job.wait(60);
    if (victim > 0) kill(victim, SIGKILL);  // if the job left it behind
    ASSERT_TRUE(ended) << c.name << ": hung\n" << job.output();
    const std::string out = job.output();
    EXPECT_NE(job.exit_code(), 0) << c.name << ":\n" << out;
    for (const auto& s : c.says) EXPECT_NE(out.find(s), std::string::npos) << c.name << ": no '" << s << "'\n" << out;
    EXPECT_EQ(out.find("DDP_GLOO_TIMEOUT_S"), std::string::npos) << c.name << ":\n" << out;
    EXPECT_EQ(unknown_flags_in_hints(out, help), std::set<std::string>{}) << c.name << ":\n" << out;
  }
}

}  // namespace
