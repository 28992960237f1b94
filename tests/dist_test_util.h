// Helpers for the multi-process tests of src/dist.
#pragma once
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "dist/launcher.h"
#include "test_util.h"

namespace dist_test {

inline const char* worker_path() { return DIST_TEST_WORKER; }

// A fresh directory for the workers' info files, removed on destruction.
using test_util::TempDir;

struct RankInfo {
  pid_t pid = -1;
  std::string rendezvous_dir;
};

// What each worker wrote into DDP_TEST_OUT (missing ranks have pid -1).
inline std::vector<RankInfo> read_infos(const std::string& dir, int world) {
  std::vector<RankInfo> out(world);
  for (int r = 0; r < world; ++r) {
    std::ifstream f(dir + "/rank" + std::to_string(r) + ".info");
    long pid = -1;
    if (f >> pid) {
      out[r].pid = static_cast<pid_t>(pid);
      f >> out[r].rendezvous_dir;
    }
  }
  return out;
}

inline bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// Waits up to `seconds` for the process to disappear.
inline bool wait_gone(pid_t pid, double seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!process_gone(pid)) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

inline bool dir_exists(const std::string& p) {
  struct stat st {};
  return !p.empty() && ::stat(p.c_str(), &st) == 0;
}

inline ddp::dist::LaunchOptions worker_job(int world, std::vector<std::string> args,
                                           const std::string& out_dir = "") {
  ddp::dist::LaunchOptions o;
  o.world_size = world;
  o.argv.push_back(worker_path());
  for (auto& a : args) o.argv.push_back(a);
  if (!out_dir.empty()) o.env.push_back({"DDP_TEST_OUT", out_dir});
  o.job_name = "dist_test";
  return o;
}

inline void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Forks `world` ranks; rank r runs body(r, dir) in a process of its own (dir:
// a fresh directory shared by the ranks, e.g. their rendezvous), and the
// floats it returns come back through dir/rank<r>.bin. Returns every rank's
// result, [rank]; empty when a rank threw, died, or `limit` passed (all are
// then killed).
inline std::vector<std::vector<float>> run_forked_ranks(
    int world, const std::function<std::vector<float>(int rank, const std::string& dir)>& body,
    std::chrono::seconds limit = std::chrono::seconds(60)) {
  TempDir dir;
  const auto file = [&dir](int r) { return dir.path + "/rank" + std::to_string(r) + ".bin"; };
  std::vector<pid_t> pids;
  std::fflush(nullptr);
  for (int r = 0; r < world; ++r) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      int status = 1;
      try {
        const std::vector<float> out = body(r, dir.path);
        std::ofstream f(file(r), std::ios::binary);
        f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size() * sizeof(float)));
        status = f.good() ? 0 : 3;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
      }
      std::fflush(nullptr);
      ::_exit(status);
    }
    pids.push_back(pid);
  }
  bool ok = true;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (pid_t pid : pids) {
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) != pid) {
      if (std::chrono::steady_clock::now() > deadline) {
        for (pid_t p : pids) ::kill(p, SIGKILL);
        ::waitpid(pid, &status, 0);
        ok = false;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (WIFSIGNALED(status)) std::fprintf(stderr, "a rank ended by signal %d\n", WTERMSIG(status));
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  std::vector<std::vector<float>> out;
  for (int r = 0; ok && r < world; ++r) {
    std::ifstream f(file(r), std::ios::binary | std::ios::ate);
    std::vector<float> v(static_cast<size_t>(f.tellg()) / sizeof(float));
    f.seekg(0);
    f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
    if (!f) return {};
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace dist_test
