// Runs a check in a forked child, so that what it changes (affinity,
// scheduling, environment) stays there. gtest assertions do not cross fork:
// the body returns the number of failed checks, or CHILD_CHECK's code.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

namespace test_util {

// The child's exit status: the body's result, or 100 + line of the first
// failed CHILD_CHECK; 200 when it did not exit normally.
inline int in_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

}  // namespace test_util

#define CHILD_CHECK(cond)                    \
  do {                                       \
    if (!(cond)) return 100 + (__LINE__ % 100); \
  } while (0)
