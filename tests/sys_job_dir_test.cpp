// A job's private directory (src/sys/job_dir.h): made private, removed
// however the job ends (its owner returning, its owner SIGKILLed, everything
// killed at once and a later job sweeping), and kept while the owner lives.
#include "sys/job_dir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "common/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using ddp::sys::JobDir;
using ddp::sys::sweep_job_dirs;
using test_util::in_child;

namespace {

using test_util::TempDir;

int job_dirs_in(const std::string& parent) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(parent)) n += e.path().filename().string().rfind("ddp-", 0) == 0;
  return n;
}

// Reaps every child (and adopted orphan) of this process; false when some
// are still running after `seconds`.
bool reap_all(double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    const pid_t p = ::waitpid(-1, nullptr, WNOHANG);
    if (p < 0 && errno == ECHILD) return true;
    if (p == 0 && std::chrono::steady_clock::now() > end) return false;
    if (p == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

TEST(JobDir, IsPrivateAndGoesWithItsOwner) {
  TempDir parent;
  std::string path;
  {
    JobDir dir(parent.path);
    path = dir.path();
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(path.rfind(parent.path + "/ddp-", 0), 0u) << path;
    std::ofstream(path + "/key") << "value";
    fs::create_directory(path + "/sub");
    std::ofstream(path + "/sub/key") << "value";
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_NE(test_util::error_of([] { JobDir d("/nonexistent-parent-xyz"); }).find("set TMPDIR"), std::string::npos);
}

// A rank that dies while its launcher lives leaves the directory in place
// (a restart meets there again).
TEST(JobDir, OutlivesAMemberThatDiesWhileTheOwnerLives) {
  TempDir parent;
  JobDir dir(parent.path);
  const pid_t member = ::fork();  // holds keep_open_fd, as a rank does
  if (member == 0) ::_exit(0);
  ::waitpid(member, nullptr, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(fs::exists(dir.path()));
  EXPECT_EQ(sweep_job_dirs(parent.path), 0);  // its owner lives: not swept either
  EXPECT_TRUE(fs::exists(dir.path()));
}

// Fault 5 of issue 20: the owner SIGKILLed (its members with it), the
// directory stayed. Now its guardian removes it, and then ends too: nothing
// is left, no directory and no process.
TEST(JobDir, GoesWhenItsOwnerIsSigkilledAndNothingIsLeftRunning) {
  TempDir parent;
  EXPECT_EQ(in_child([&] {
              // Adopt every orphan, so that whatever is left is a child of this process.
              ::prctl(PR_SET_CHILD_SUBREAPER, 1);
              int ready[2];
              CHILD_CHECK(::pipe(ready) == 0);
              const pid_t owner = ::fork();
              if (owner == 0) {
                JobDir dir(parent.path);
                const pid_t member = ::fork();  // a rank: holds the descriptor, dies with its owner
                if (member == 0) {
                  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
                  (void)!::write(ready[1], "x", 1);
                }
                for (;;) ::pause();
              }
              char c;
              CHILD_CHECK(::read(ready[0], &c, 1) == 1);
              CHILD_CHECK(job_dirs_in(parent.path) == 1);
              ::kill(owner, SIGKILL);
              CHILD_CHECK(reap_all(10));  // owner, member and guardian all ended
              CHILD_CHECK(job_dirs_in(parent.path) == 0);
              return 0;
            }),
            0);
}

// Everything killed at once (the guardian too): the next JobDir in the same
// parent sweeps what a dead owner left, and nothing else.
TEST(JobDir, TheNextJobSweepsWhatADeadOwnerLeftAndNothingElse) {
  TempDir parent;
  const std::string p = parent.path;
  fs::create_directory(p + "/ddp-dead01");  // marked, nobody holds its lock
  std::ofstream(p + "/ddp-dead01/.launcher") << "1";
  fs::create_directory(p + "/ddp-dead01/sub");
  std::ofstream(p + "/ddp-dead01/sub/key") << "v";
  fs::create_directory(p + "/ddp-live01");  // marked and locked: its owner lives
  std::ofstream(p + "/ddp-live01/.launcher") << "1";
  const int lock = ::open((p + "/ddp-live01").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_EQ(::flock(lock, LOCK_EX), 0);
  fs::create_directory(p + "/ddp-nomark");  // not marked (being made, or not ours)
  fs::create_directory(p + "/elsewhere");
  std::ofstream(p + "/elsewhere/.launcher") << "1";
  fs::create_directory(p + "/target");
  std::ofstream(p + "/target/.launcher") << "1";
  fs::create_directory_symlink(p + "/target", p + "/ddp-link01");
  {
    JobDir next(p);
    EXPECT_FALSE(fs::exists(p + "/ddp-dead01"));
    EXPECT_TRUE(fs::exists(p + "/ddp-live01/.launcher"));
    EXPECT_TRUE(fs::exists(p + "/ddp-nomark"));
    EXPECT_TRUE(fs::exists(p + "/elsewhere/.launcher"));
    EXPECT_TRUE(fs::exists(p + "/target/.launcher"));
    EXPECT_TRUE(fs::is_symlink(p + "/ddp-link01"));
  }
  // Its owner ends without cleaning up: now it is a dead one. (The guardian
  // forked above held a copy of the lock until it closed its descriptors.)
  ::close(lock);
  int swept = 0;
  for (int i = 0; i < 500 && swept == 0; ++i) {
    swept = sweep_job_dirs(p);
    if (swept == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(swept, 1);
  EXPECT_FALSE(fs::exists(p + "/ddp-live01"));
}

}  // namespace
