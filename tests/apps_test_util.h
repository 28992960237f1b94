// Runs the project's programs as real child processes, as a user would.
#pragma once
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "train/checkpoint.h"

namespace apps_test {

inline std::string binary(const std::string& name) { return std::string(DDP_BINARY_DIR) + "/" + name; }
inline std::string mnist_dir() { return std::string(DDP_SOURCE_DIR) + "/data/mnist"; }

inline std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A private temporary directory, removed with everything in it.
using test_util::TempDir;

// A started program; its stdout and stderr go to one file.
struct Proc {
  pid_t pid = -1;
  std::string log;
  int status = -1;
  double seconds = 0;
  std::chrono::steady_clock::time_point started;

  // file_size_limit: RLIMIT_FSIZE of the child in bytes (0: unchanged), as a
  // full disk seen from the program.
  Proc(const std::vector<std::string>& argv, const std::string& log_path,
       const std::vector<std::pair<std::string, std::string>>& env = {}, rlim_t file_size_limit = 0)
      : log(log_path), started(std::chrono::steady_clock::now()) {
    pid = fork();
    if (pid == 0) {
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      if (file_size_limit > 0) {
        struct rlimit lim {file_size_limit, file_size_limit};
        setrlimit(RLIMIT_FSIZE, &lim);
      }
      FILE* f = fopen(log_path.c_str(), "w");
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }

  // Waits up to `limit` seconds; kills the process if it is still running
  // then (and returns false).
  bool wait(double limit) {
    while (true) {
      const pid_t r = waitpid(pid, &status, WNOHANG);
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (r == pid) return true;
      if (seconds > limit) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }
  std::string output() const { return read_file(log); }
};

// The direct children of a process (Linux /proc).
inline std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> kids;
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t k;
  while (in >> k) kids.push_back(k);
  return kids;
}

// True while the process exists and is not a zombie.
inline bool alive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

// Waits until `path` exists (up to `limit` seconds).
inline bool wait_for_file(const std::string& path, double limit) {
  for (int i = 0; i < limit * 50; ++i) {
    if (std::filesystem::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}


// Runs argv (whose checkpoints go to ckpt_dir), stops it with `sig` during
// epoch 2, just after epoch 1's checkpoint, and checks the agreed stop: exit
// 128 + sig within 20 s, the resume hint, a mid-epoch checkpoint.
inline void stop_during_epoch_2(const std::vector<std::string>& argv, const std::string& ckpt_dir, int sig,
                                const std::string& log) {
  Proc first(argv, log);
  EXPECT_TRUE(wait_for_file(ckpt_dir + "/checkpoint_epoch1.safetensors", 60)) << first.output();
  // The checkpoint is written after epoch 1's evaluation: epoch 2 is training
  // now, for over a second (100 steps a rank).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(first.pid, sig);
  EXPECT_TRUE(first.wait(20));
  EXPECT_EQ(first.exit_code(), 128 + sig) << first.output();
  EXPECT_NE(first.output().find("--resume auto"), std::string::npos) << first.output();
  const std::string stopped_at = ddp::train::newest_checkpoint(ckpt_dir);
  EXPECT_NE(stopped_at.find("_step"), std::string::npos) << "expected a mid-epoch checkpoint, got " << stopped_at;
}

// The path of an installed program in the usual directories ("" if none).
// The same floats, bit for bit (NaNs included).
inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs a command to the end; returns its exit code (output to `log`).
inline int run_cmd(const std::vector<std::string>& argv, const std::string& log = "/dev/null") {
  Proc p(argv, log);
  if (!p.wait(30)) return -1;
  return p.exit_code();
}

inline std::string which(const std::string& name) {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin", "/sbin"}) {
    const std::string p = std::string(dir) + "/" + name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// Runs train_serial or train_parallel (argv, plus --save-results, --no-progress
// and --data-dir) to the end within `limit` seconds, expecting exit 0;
// returns its results file (an empty object if it failed).
inline nlohmann::json run_ok(std::vector<std::string> argv, const TempDir& tmp, const std::string& name,
                             const std::vector<std::pair<std::string, std::string>>& env = {}, double limit = 180) {
  const std::string out = tmp.path + "/" + name + ".json";
  argv.insert(argv.end(), {"--save-results", out, "--no-progress", "--data-dir", mnist_dir()});
  Proc p(argv, tmp.path + "/" + name + ".log", env);
  EXPECT_TRUE(p.wait(limit)) << name << " did not finish in " << limit << " s";
  EXPECT_EQ(p.exit_code(), 0) << name << ":\n" << p.output();
  if (p.exit_code() != 0) return nlohmann::json::object();
  return nlohmann::json::parse(read_file(out));
}

}  // namespace apps_test
