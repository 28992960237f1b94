// Starting programs (src/sys/process.h), run_child (src/sys/subprocess.h),
// ids and whole writes.
#include "sys/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "common/error.h"
#include "sys/fd.h"
#include "sys/random_id.h"
#include "sys/subprocess.h"
#include "test_util.h"

using namespace ddp;
using namespace ddp::sys;

namespace {

// A fresh directory, removed afterwards.
using test_util::TempDir;

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int wait_for(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return exit_status_of(status);
}

}  // namespace

TEST(MpiLaunch, FindsExecutablesInPath) {
  EXPECT_FALSE(find_executable("sh").empty());
  EXPECT_EQ(find_executable("no-such-program-xyz"), "");
  EXPECT_EQ(find_executable("/bin/sh"), "/bin/sh");
}

TEST(Spawn, ChildGetsItsEnvironmentOutputAndDirectory) {
  TempDir dir;
  ASSERT_FALSE(dir.path.empty());
  const std::string out_path = dir.path + "/out.txt";
  const int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "echo \"$DDP_T_VAR\"; pwd; echo err >&2; read x || echo eof; exit 3"};
  o.env = {{"DDP_T_VAR", "hello"}};
  o.cwd = dir.path;
  o.stdout_fd = o.stderr_fd = fd;
  o.null_stdin = true;
  const pid_t pid = spawn(o);
  ::close(fd);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(wait_for(pid), 3);
  const std::string out = read_all(out_path);
  EXPECT_NE(out.find("hello\n"), std::string::npos) << out;
  EXPECT_NE(out.find(std::filesystem::canonical(dir.path).string() + "\n"), std::string::npos) << out;
  EXPECT_NE(out.find("err\n"), std::string::npos) << out;
  EXPECT_NE(out.find("eof\n"), std::string::npos) << out;
}

TEST(Spawn, ExecFailureIs127WithAMessage) {
  TempDir dir;
  const std::string out_path = dir.path + "/out.txt";
  const int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  SpawnOptions o;
  o.argv = {dir.path + "/no-such-program"};
  o.stderr_fd = fd;
  const pid_t pid = spawn(o);
  ::close(fd);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(wait_for(pid), 127);
  EXPECT_NE(read_all(out_path).find("cannot execute " + o.argv[0]), std::string::npos);
  SpawnOptions none;
  errno = 0;
  EXPECT_EQ(spawn(none), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Spawn, IgnoredSignalsAreDefaultInTheChild) {
  struct sigaction ign {}, old {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGTERM, &ign, &old);
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "kill -TERM $$; sleep 5"};
  const pid_t pid = spawn(o);
  ::sigaction(SIGTERM, &old, nullptr);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(wait_for(pid), 128 + SIGTERM);
}

TEST(Spawn, SignalNames) {
  EXPECT_EQ(signal_name(SIGKILL), "SIGKILL");
  EXPECT_EQ(signal_name(SIGTERM), "SIGTERM");
  EXPECT_EQ(signal_name(12345), "signal 12345");
}

TEST(Spawn, SelfExe) {
  const std::string exe = self_exe();
  EXPECT_NE(exe.find("test_sys"), std::string::npos) << exe;
  EXPECT_EQ(self_exe_dir(), std::filesystem::path(exe).parent_path().string());
}

TEST(RunChild, StreamsLinesAsDisplayedAndReportsTheExitStatus) {
  ChildOptions o;
  o.argv = {"/bin/sh", "-c", "printf 'a\\nbar\\rdone\\n'; echo oops >&2; exit 4"};
  std::vector<std::string> out, err;
  o.on_line = [&](const std::string& line, bool is_stderr) { (is_stderr ? err : out).push_back(line); };
  const ChildResult r = run_child(o);
  EXPECT_EQ(r.exit_status, 4);
  EXPECT_FALSE(r.signaled);
  EXPECT_EQ(out, (std::vector<std::string>{"a", "done"}));
  EXPECT_EQ(err, (std::vector<std::string>{"oops"}));
  EXPECT_EQ(current_child(), 0);
  o.argv = {"/no/such/program"};
  EXPECT_THROW(run_child(o), UserError);
}

TEST(RandomHex, LengthAlphabetAndNoRepeats) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string id = random_hex(8);
    EXPECT_EQ(id.size(), 16u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(random_hex(3).size(), 6u);
}

TEST(WriteAll, WritesEverythingOrSaysWhy) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  const std::string big(60000, 'x');  // under the pipe's 64 KiB: one write need not take it all
  EXPECT_TRUE(write_all(p[1], big.data(), big.size()));
  EXPECT_TRUE(write_all(p[1], "end"));
  ::close(p[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  EXPECT_EQ(got, big + "end");
  errno = 0;
  EXPECT_FALSE(write_all(-1, "x"));
  EXPECT_EQ(errno, EBADF);
}
