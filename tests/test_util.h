// Helpers shared by tests of several rooms: a check in a forked child,
// environment variables set for one test, and a UserError's text.
#pragma once
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace test_util {

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
