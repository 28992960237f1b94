// run_experiments --network: a short suite whose parallel run crosses an
// emulated 1 Gbit/s network, the network and model_validation fields it
// writes, and clean-up (rendezvous directory, namespaces, processes) after
// success and after Ctrl-C; without the capability, one error before any run.
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "netemu_test_util.h"

using namespace apps_test;
using namespace netemu_test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> suite(const std::string& out, int epochs, int limit) {
  return {binary("run_experiments"), "--network", "1gbit", "-p", "2", "-e", std::to_string(epochs), "--limit",
          std::to_string(limit), "--data-dir", mnist_dir(), "-o", out};
}

std::string experiment_dir(const std::string& out) {
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().rfind("experiment_", 0) == 0) return e.path().string();
  return "";
}

// The rendezvous directories a run's log names.
std::vector<std::string> rendezvous_dirs(const std::string& log) {
  std::vector<std::string> dirs;
  const std::string text = read_file(log);
  const std::regex re("file://(/tmp/ddp-[A-Za-z0-9]+)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it)
    dirs.push_back((*it)[1]);
  return dirs;
}

// However a test ends, its suite does not outlive it.
struct KillOnExit {
  Proc& p;
  ~KillOnExit() {
    if (alive(p.pid)) {
      kill(p.pid, SIGKILL);
      p.wait(10);
    }
  }
};

void expect_finite(const json& j, const std::vector<const char*>& keys, const std::string& where) {
  for (const char* k : keys) {
    ASSERT_TRUE(j.contains(k)) << where << " lacks " << k << ": " << j.dump(2);
    ASSERT_TRUE(j[k].is_number()) << where << "." << k << " is " << j[k].dump();
    EXPECT_TRUE(std::isfinite(j[k].get<double>())) << where << "." << k;
  }
}

}  // namespace

TEST(EmulatedSuite, ARunOverA1GbitNetworkWritesTheNetworkAndTheModelsValidation) {
  NETEMU_REQUIRE_PRIVILEGES();
  TempDir tmp;
  Proc p(suite(tmp.path, 1, 640), tmp.path + "/out.log");
  KillOnExit guard{p};
  ASSERT_TRUE(p.wait(300)) << p.output();
  ASSERT_EQ(p.exit_code(), 0) << p.output();
  const std::string dir = experiment_dir(tmp.path);
  const json m = json::parse(read_file(dir + "/performance_metrics.json"));
  ASSERT_TRUE(m.contains("network")) << m.dump(2);
  expect_finite(m["network"], {"rate_bit_per_s", "delay_s", "alpha_s", "beta_bytes_per_s"}, "network");
  EXPECT_EQ(m["network"]["rate_bit_per_s"].get<double>(), 1e9);
  // The fitted bandwidth is the link's, not loopback's (several GB/s here).
  EXPECT_LT(m["network"]["beta_bytes_per_s"].get<double>(), 1.1 * 1e9 / 8);
  EXPECT_GT(m["network"]["beta_bytes_per_s"].get<double>(), 0.5 * 1e9 / 8);
  bool validated = false;
  for (const auto& c : m["configurations"]) {
    if (c["processes"] != 2) continue;
    ASSERT_TRUE(c.contains("model_validation")) << c.dump(2);
    expect_finite(c["model_validation"],
                  {"predicted_speedup", "measured_speedup", "speedup_error", "predicted_allreduce_ms",
                   "measured_allreduce_ms", "allreduce_error", "predicted_exposed_ms", "measured_exposed_ms",
                   "exposed_abs_diff_ms"},
                  "model_validation");
    // At 1 Gbit/s the gradient's 1.69 MB each way take at least 13.5 ms.
    EXPECT_GT(c["model_validation"]["predicted_allreduce_ms"].get<double>(), 0.8 * 13.5);
    validated = true;
  }
  EXPECT_TRUE(validated);
  const std::string log = dir + "/logs/parallel_2p.log";
  EXPECT_NE(read_file(log).find("[node 1] train_parallel: node 1 of 2"), std::string::npos) << read_file(log);
  const auto dirs = rendezvous_dirs(log);
  EXPECT_FALSE(dirs.empty()) << read_file(log);
  for (const auto& d : dirs) EXPECT_FALSE(fs::exists(d)) << d << " is left";
  EXPECT_NE(read_file(dir + "/report.md").find("over the emulated 1gbit network"), std::string::npos);
  // Node 0's rank 0 wrote the trace of both nodes, and timeline.png is drawn from it.
  const json trace = json::parse(read_file(dir + "/trace_parallel_2p.json"));
  EXPECT_EQ(trace["otherData"]["world_size"], 2);
  EXPECT_EQ(m["timeline"]["trace_file"], "trace_parallel_2p.json");
  EXPECT_TRUE(fs::exists(dir + "/timeline.png"));
}

TEST(EmulatedSuite, CtrlCStopsEveryNodeAndLeavesNothing) {
  NETEMU_REQUIRE_PRIVILEGES();
  TempDir tmp;
  // Each epoch evaluates the whole test set (seconds): 4 epochs keep the
  // serial run short and the parallel one running long enough to interrupt.
  Proc p(suite(tmp.path, 4, 640), tmp.path + "/out.log");
  KillOnExit guard{p};
  std::string log;
  for (int i = 0; i < 3000; ++i) {  // the serial run goes first: wait for both nodes of the parallel one
    const std::string dir = experiment_dir(tmp.path);
    if (!dir.empty()) log = dir + "/logs/parallel_2p.log";
    if (!log.empty() && read_file(log).find("[node 1] train_parallel: node 1 of 2") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(log.empty()) << p.output();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  std::vector<pid_t> descendants;
  const auto namespaces = descendant_namespaces(p.pid, descendants);
  ASSERT_EQ(namespaces.size(), 3u) << "a switch and two nodes\n" << read_file(log);
  kill(p.pid, SIGINT);
  ASSERT_TRUE(p.wait(60)) << p.output();
  EXPECT_EQ(p.exit_code(), 128 + SIGINT) << p.output();
  expect_nothing_left(namespaces, descendants, 10);
  const std::string report = read_file(experiment_dir(tmp.path) + "/report.md");
  EXPECT_NE(report.find("**Note:** the suite was interrupted (Interrupt) and is incomplete"), std::string::npos)
      << report;
  const auto dirs = rendezvous_dirs(log);
  EXPECT_FALSE(dirs.empty());
  for (const auto& d : dirs) EXPECT_FALSE(fs::exists(d)) << d << " is left";
}

TEST(EmulatedSuite, WithoutPrivilegesOneClearErrorBeforeAnyRun) {
  NETEMU_REQUIRE_PRIVILEGES();  // to be able to take them away
  TempDir tmp;
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0);  // root cannot get it back at exec
    const int fd = open((tmp.path + "/log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    const auto argv = suite(tmp.path + "/out", 1, 640);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  const std::string out = read_file(tmp.path + "/log");
  EXPECT_EQ(WEXITSTATUS(status), 1) << out;
  EXPECT_NE(out.find("--network 1gbit: emulating a network needs CAP_NET_ADMIN"), std::string::npos) << out;
  EXPECT_NE(out.find("fix: run it as root"), std::string::npos) << out;
  EXPECT_EQ(out.find("[run 1/"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp.path + "/out")) << "nothing is created before the check";
}
