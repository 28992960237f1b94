// launch_local: environment of the workers, failure handling (a rank killed,
// a rank exiting non-zero), signals to the launcher, no leftovers
// (processes, rendezvous directory), concurrent launches.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "common/error.h"
#include "dist/launcher.h"
#include "dist_test_util.h"
#include "test_util.h"

extern char** environ;

using namespace ddp;
using namespace ddp::dist;
using namespace dist_test;

namespace {

void expect_no_leftovers(const std::string& out_dir, int world) {
  auto infos = read_infos(out_dir, world);
  for (int r = 0; r < world; ++r) {
    ASSERT_GT(infos[r].pid, 0) << "rank " << r << " never started";
    EXPECT_TRUE(process_gone(infos[r].pid)) << "rank " << r << " still exists";
    EXPECT_FALSE(infos[r].rendezvous_dir.empty());
    EXPECT_FALSE(dir_exists(infos[r].rendezvous_dir)) << infos[r].rendezvous_dir;
  }
}

// Runs a launcher as a separate process (so that it can be signalled).
pid_t spawn_launcher(const std::vector<std::string>& args, const std::string& out_dir) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.push_back(*e);
  env_strings.push_back("DDP_TEST_OUT=" + out_dir);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> a = {worker_path()};
  a.insert(a.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, worker_path(), nullptr, nullptr, argv.data(), envp.data()) != 0) return -1;
  return pid;
}

bool wait_for_infos(const std::string& dir, int world, double seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    bool all = true;
    for (auto& i : read_infos(dir, world)) all = all && i.pid > 0;
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// Signals a launcher process once its workers run; returns its exit code.
int signal_launcher(int sig, const std::string& out_dir, double* took) {
  pid_t launcher = spawn_launcher({"launch", "3", "die", "-1", "kill", "sleep"}, out_dir);
  EXPECT_GT(launcher, 0);
  EXPECT_TRUE(wait_for_infos(out_dir, 3, 10));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // all in their sleep
  auto t0 = std::chrono::steady_clock::now();
  ::kill(launcher, sig);
  int st = 0;
  EXPECT_EQ(::waitpid(launcher, &st, 0), launcher);
  *took = seconds_since(t0);
  EXPECT_TRUE(WIFEXITED(st)) << "launcher killed by signal " << WTERMSIG(st);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// A job of `world` copies of `/bin/sh -c script`, its standard error
// captured: how it ended, what it said, how long it took.
struct ShellJob {
  int rc = 0;
  LaunchOutcome out;
  std::string err;
  double seconds = 0;
};
ShellJob run_shell(int world, const std::string& script, double grace_s) {
  LaunchOptions o;
  o.world_size = world;
  o.argv = {"/bin/sh", "-c", script};
  o.grace_s = grace_s;
  ShellJob j;
  testing::internal::CaptureStderr();
  const auto t0 = std::chrono::steady_clock::now();
  j.rc = launch_local(o, &j.out);
  j.seconds = seconds_since(t0);
  j.err = testing::internal::GetCapturedStderr();
  return j;
}

}  // namespace

TEST(Launcher, AllRanksSucceedReturnsZero) {
  LaunchOptions o;
  o.world_size = 3;
  o.argv = {"/bin/true"};
  EXPECT_EQ(launch_local(o), 0);
}

// Exit statuses survive a caller that ignores SIGCHLD (which would let the
// kernel reap the workers and lose their statuses).
TEST(Launcher, ExitStatusIsSeenEvenWithSigchldIgnored) {
  struct sigaction ign {}, old {};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ASSERT_EQ(::sigaction(SIGCHLD, &ign, &old), 0);
  LaunchOptions o;
  o.world_size = 2;
  o.argv = {"/bin/sh", "-c", "exit $((RANK + 6))"};
  testing::internal::CaptureStderr();
  int rc = launch_local(o);
  std::string err = testing::internal::GetCapturedStderr();
  struct sigaction now {};
  ::sigaction(SIGCHLD, &old, &now);
  EXPECT_EQ(now.sa_handler, SIG_IGN) << "the caller's disposition was not restored";
  EXPECT_TRUE(rc == 6 || rc == 7) << rc << " " << err;
  EXPECT_NE(err.find("exited with status"), std::string::npos) << err;
}

TEST(Launcher, WorkersGetRankWorldAndRendezvousEnvironment) {
  TempDir out;
  LaunchOptions o;
  o.world_size = 4;
  o.argv = {"/bin/sh", "-c",
            "test \"$LOCAL_RANK\" = \"$RANK\" && test \"$LOCAL_WORLD_SIZE\" = \"$WORLD_SIZE\" && "
            "test -d \"$DDP_RENDEZVOUS_DIR\" && test -n \"$DDP_JOB_ID\" && "
            "test \"$(stat -c %a \"$DDP_RENDEZVOUS_DIR\")\" = 700 && "
            "echo \"$WORLD_SIZE $DDP_RENDEZVOUS_DIR $DDP_JOB_ID $EXTRA\" > \"$OUT/r$RANK\""};
  o.env = {{"OUT", out.path}, {"EXTRA", "yes"}, {"RANK", "99"}};  // RANK is the launcher's
  ASSERT_EQ(launch_local(o), 0);
  std::string first_dir, first_job;
  for (int r = 0; r < 4; ++r) {
    std::ifstream f(out.path + "/r" + std::to_string(r));
    std::string world, dir, job, extra;
    ASSERT_TRUE(f >> world >> dir >> job >> extra) << "rank " << r;
    EXPECT_EQ(world, "4");
    EXPECT_EQ(extra, "yes");
    EXPECT_NE(dir.find("/ddp-"), std::string::npos) << dir;
    if (r == 0) {
      first_dir = dir;
      first_job = job;
    }
    EXPECT_EQ(dir, first_dir);
    EXPECT_EQ(job, first_job);
  }
  EXPECT_FALSE(dir_exists(first_dir)) << "rendezvous directory left behind";
}

TEST(Launcher, MissingExecutableIsAUserError) {
  LaunchOptions o;
  o.world_size = 2;
  o.argv = {"/nonexistent/worker"};
  EXPECT_THROW(launch_local(o), UserError);
  o.argv = {};
  EXPECT_THROW(launch_local(o), UserError);
  o.argv = {"/bin/true"};
  o.world_size = 0;
  EXPECT_THROW(launch_local(o), UserError);
}

// A rank SIGKILLs itself while the others sleep: the launcher names it,
// stops the others, and leaves nothing behind, well within 10 s.
TEST(Launcher, KilledRankIsNamedAndTheOthersStopped) {
  TempDir out;
  auto job = worker_job(3, {"die", "1", "kill", "sleep"}, out.path);
  testing::internal::CaptureStderr();
  auto t0 = std::chrono::steady_clock::now();
  int rc = launch_local(job);
  double took = seconds_since(t0);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 128 + 9);
  EXPECT_LT(took, 10.0);
  EXPECT_NE(err.find("dist_test: rank 1 was killed by signal 9 (SIGKILL); stopping the other ranks"),
            std::string::npos)
      << err;
  expect_no_leftovers(out.path, 3);
}

// A rank SIGKILLs itself while the others are inside all-reduces with it: they
// lose contact and fail, and the report still names the killed rank.
TEST(Launcher, KilledRankDuringAllreduceEndsTheJobQuickly) {
  TempDir out;
  auto job = worker_job(4, {"die", "2", "kill", "allreduce"}, out.path);
  testing::internal::CaptureStderr();
  auto t0 = std::chrono::steady_clock::now();
  int rc = launch_local(job);
  double took = seconds_since(t0);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(rc, 0);
  EXPECT_LT(took, 10.0);
  EXPECT_NE(err.find("rank 2 was killed by signal 9 (SIGKILL)"), std::string::npos) << err;
  expect_no_leftovers(out.path, 4);
}

TEST(Launcher, NonZeroExitIsNamedWithItsStatus) {
  TempDir out;
  auto job = worker_job(3, {"die", "2", "exit3", "sleep"}, out.path);
  testing::internal::CaptureStderr();
  auto t0 = std::chrono::steady_clock::now();
  int rc = launch_local(job);
  double took = seconds_since(t0);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 3);
  EXPECT_LT(took, 10.0);
  EXPECT_NE(err.find("rank 2 exited with status 3"), std::string::npos) << err;
  size_t lines = 0;
  for (char c : err) lines += c == '\n';
  EXPECT_EQ(lines, 1u) << "one line expected:\n" << err;
  expect_no_leftovers(out.path, 3);
}

// A worker that ignores SIGTERM is killed after the grace period.
TEST(Launcher, WorkerIgnoringSigtermIsKilledAfterGrace) {
  const ShellJob j =
      run_shell(2, "if [ \"$RANK\" = 0 ]; then sleep 0.3; exit 5; fi; trap '' TERM; exec sleep 30", 0.5);
  EXPECT_EQ(j.rc, 5) << j.err;
  EXPECT_GE(j.seconds, 0.7);
  EXPECT_LT(j.seconds, 5.0);
}

// A rank stopped (SIGSTOP, Ctrl-Z) after the job's last collective is never
// timed out by the others: once rank 0 has exited 0 and grace_s passed with
// every running rank stopped, the job is done and the stopped rank ended,
// not waited for forever (and not before rank 0 finished).
TEST(Launcher, ARankStoppedAfterTheJobFinishedIsEndedAndTheJobSucceeds) {
  const ShellJob j =
      run_shell(3, "if [ \"$RANK\" = 2 ]; then kill -STOP $$; fi; if [ \"$RANK\" = 0 ]; then sleep 0.5; fi", 0.5);
  EXPECT_EQ(j.rc, 0) << j.err;
  EXPECT_EQ(j.out.failed_rank, -1);
  EXPECT_GE(j.seconds, 1.0) << "the stopped rank was ended before rank 0 finished";
  EXPECT_LT(j.seconds, 5.0);
  EXPECT_NE(j.err.find("rank 2 is stopped (SIGSTOP, Ctrl-Z or a debugger) after the job finished; ending it"),
            std::string::npos)
      << j.err;
  for (pid_t pid : j.out.pids) EXPECT_TRUE(process_gone(pid)) << pid;
}

// Rank 0 stopped after the others finished has not written the results
// (the job's): it is continued once, and the job ends as it would have.
TEST(Launcher, RankZeroStoppedAfterTheOthersFinishedIsContinuedOnceToFinish) {
  const ShellJob j = run_shell(2, "if [ \"$RANK\" = 0 ]; then kill -STOP $$; exit 0; fi", 0.5);
  EXPECT_EQ(j.rc, 0) << j.err;
  EXPECT_EQ(j.out.failed_rank, -1);
  EXPECT_NE(j.err.find("rank 0 is stopped (SIGSTOP, Ctrl-Z or a debugger) after the other ranks finished, before it "
                       "wrote the results; continuing it (SIGCONT) so that it does"),
            std::string::npos)
      << j.err;
}

// Stopped again once continued (or held by a debugger): a failure blamed on
// rank 0, which a restart would re-run.
TEST(Launcher, RankZeroStoppedAgainAfterItWasContinuedIsAFailureNamingIt) {
  const ShellJob j = run_shell(2, "if [ \"$RANK\" = 0 ]; then kill -STOP $$; kill -STOP $$; fi", 0.5);
  EXPECT_NE(j.rc, 0) << j.err;
  EXPECT_EQ(j.out.failed_rank, 0);
  EXPECT_NE(j.out.cause.find("went silent: it is stopped"), std::string::npos) << j.out.cause;
  EXPECT_NE(j.err.find("rank 0 went silent: it is stopped (SIGSTOP, Ctrl-Z or a debugger) after the other ranks "
                       "finished"),
            std::string::npos)
      << j.err;
  for (pid_t pid : j.out.pids) EXPECT_TRUE(process_gone(pid)) << pid;
}

TEST(Launcher, SigtermToTheLauncherIsForwardedAndReturns143) {
  TempDir out;
  double took = 0;
  EXPECT_EQ(signal_launcher(SIGTERM, out.path, &took), 143);
  EXPECT_LT(took, 5.0);
  expect_no_leftovers(out.path, 3);
}

TEST(Launcher, SigintToTheLauncherIsForwardedAndReturns130) {
  TempDir out;
  double took = 0;
  EXPECT_EQ(signal_launcher(SIGINT, out.path, &took), 130);
  EXPECT_LT(took, 5.0);
  expect_no_leftovers(out.path, 3);
}

// If the launcher itself is SIGKILLed, its workers die with it.
TEST(Launcher, WorkersDieWithAKilledLauncher) {
  TempDir out;
  pid_t launcher = spawn_launcher({"launch", "3", "die", "-1", "kill", "sleep"}, out.path);
  ASSERT_GT(launcher, 0);
  ASSERT_TRUE(wait_for_infos(out.path, 3, 10));
  ::kill(launcher, SIGKILL);
  int st = 0;
  ASSERT_EQ(::waitpid(launcher, &st, 0), launcher);
  auto infos = read_infos(out.path, 3);
  for (auto& i : infos) EXPECT_TRUE(wait_gone(i.pid, 5.0)) << "worker " << i.pid << " outlived";
  std::error_code ec;
  std::filesystem::remove_all(infos[0].rendezvous_dir, ec);  // its guardian may not be done yet (next test)
}

// Fault 5 of issue 20: with the launcher SIGKILLed its ranks died, but the
// rendezvous directory stayed. Now nothing is left: no directory in TMPDIR
// and no process (this test adopts the job's orphans, so whatever still
// runs would be its child).
TEST(Launcher, NothingIsLeftWhenTheLauncherIsSigkilled) {
  TempDir out, tmp;
  EXPECT_EQ(test_util::in_child([&] {
              ::prctl(PR_SET_CHILD_SUBREAPER, 1);
              ::setenv("TMPDIR", tmp.path.c_str(), 1);
              const pid_t launcher = spawn_launcher({"launch", "3", "die", "-1", "kill", "sleep"}, out.path);
              CHILD_CHECK(launcher > 0);
              CHILD_CHECK(wait_for_infos(out.path, 3, 10));
              const std::string dir = read_infos(out.path, 1)[0].rendezvous_dir;
              CHILD_CHECK(dir.rfind(tmp.path + "/ddp-", 0) == 0 && dir_exists(dir));
              ::kill(launcher, SIGKILL);
              const auto t0 = std::chrono::steady_clock::now();
              for (;;) {  // the launcher, its ranks, and whatever else it started
                const pid_t p = ::waitpid(-1, nullptr, WNOHANG);
                if (p < 0 && errno == ECHILD) break;
                CHILD_CHECK(seconds_since(t0) < 10);
                if (p == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
              }
              CHILD_CHECK(!dir_exists(dir));
              CHILD_CHECK(std::filesystem::is_empty(tmp.path));
              return 0;
            }),
            0);
}

// Two jobs started at the same moment from two threads do not meet.
TEST(Launcher, TwoConcurrentLaunchesInThreadsBothSucceed) {
  int rc1 = -1, rc2 = -1;
  std::thread a([&] { rc1 = launch_local(worker_job(3, {"collectives"})); });
  std::thread b([&] { rc2 = launch_local(worker_job(3, {"collectives"})); });
  a.join();
  b.join();
  EXPECT_EQ(rc1, 0);
  EXPECT_EQ(rc2, 0);
}

// Two launcher processes at the same moment (each with 2 workers).
TEST(Launcher, TwoConcurrentLauncherProcessesBothSucceed) {
  auto job = worker_job(2, {"launch", "2", "collectives"});
  EXPECT_EQ(launch_local(job), 0);
}
