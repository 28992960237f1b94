// Helpers shared by tests of several rooms: a private temp directory, a
// check in a forked child, environment variables set for one test, and a
// UserError's text.
#pragma once
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/rng.h"

namespace test_util {

// A private directory (mkdtemp under the system's temp directory), removed
// with everything in it when the test ends. `path` is empty if it could not
// be made.
class TempDir {
 public:
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "ddp-test-XXXXXX").string();
    if (::mkdtemp(t.data())) path = t;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return path + "/" + name; }
  std::string operator/(const std::string& name) const { return file(name); }
  std::string str() const { return path; }
  // The names of the entries in it, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string path;
};

// Runs `body` in a forked child, so that what it changes (affinity,
// scheduling, environment) stays there. gtest assertions do not cross fork:
// the child's exit status is the body's result (the number of failed
// checks), or 100 + line of the first failed CHILD_CHECK; 200 when it did
// not exit normally.
inline int in_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

// Element i of a seeded uniform sequence on [-1, 1): test tensors that are
// the same every run and on every rank.
inline float uniform(uint64_t seed, size_t i) {
  ddp::SplitMix64 g(ddp::mix_seed(seed, i));
  return 2.0f * g.uniform_float() - 1.0f;
}

// "what | hint" of the UserError that `f` throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ddp::UserError& e) {
    return std::string(e.what()) + " | " + e.hint();
  }
  return "";
}

// Sets environment variables (nullptr: unsets) for one test and restores
// them, in reverse order, on destruction.
class ScopedEnv {
 public:
  void set(const char* k, const char* v) {
    const char* old = ::getenv(k);
    saved_.push_back({k, old ? std::optional<std::string>(old) : std::nullopt});
    if (v)
      ::setenv(k, v, 1);
    else
      ::unsetenv(k);
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second)
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else
        ::unsetenv(it->first.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

}  // namespace test_util

#define CHILD_CHECK(cond)                    \
  do {                                       \
    if (!(cond)) return 100 + (__LINE__ % 100); \
  } while (0)
