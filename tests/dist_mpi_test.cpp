// The MPI backend with the real mpirun. The outer tests run this very test
// program under `mpirun -np N`, selecting one of the DISABLED_ tests below,
// which do the work in every rank (they are skipped when not under mpirun).
// Also: mpirun's command line and the reading of its failure report.
#include <gtest/gtest.h>
#include <mpi.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <chrono>
#include <cstdio>
#include <thread>

#include "common/error.h"
#include "dist/bf16.h"
#include "dist/grad_sync.h"
#include "dist/mpi_communicator.h"
#include "dist/mpi_launch.h"
#include "dist_test_util.h"
#include "sys/launch_env.h"
#include "sys/process.h"

using namespace ddp;
using namespace ddp::dist;

namespace {

std::string self_path() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

struct RunResult {
  int code = -1;
  std::string output;
  double seconds = 0;
};

// Runs this program's test `name` under mpirun with n ranks.
RunResult under_mpirun(int n, const std::string& name, const std::vector<std::string>& env = {}) {
  dist_test::TempDir tmp;
  const std::string log = tmp.path + "/out.log";
  std::string cmd;
  for (const auto& e : env) cmd += e + " ";
  cmd += "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np " + std::to_string(n) +
         " --oversubscribe " + self_path() + " --gtest_color=no --gtest_also_run_disabled_tests --gtest_filter=" + name + " > " +
         log + " 2>&1";
  RunResult r;
  const auto t0 = std::chrono::steady_clock::now();
  const int st = std::system(cmd.c_str());
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  return r;
}

bool have_mpirun() { return !sys::find_executable("mpirun").empty(); }

uint64_t fnv1a(const void* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  return h;
}

// Every rank's value, gathered through the communicator (exact in doubles).
std::vector<double> gather(Communicator& c, uint64_t v) {
  std::vector<double> all(2 * c.size(), 0.0);
  all[2 * c.rank()] = static_cast<double>(v >> 32);
  all[2 * c.rank() + 1] = static_cast<double>(v & 0xffffffffu);
  c.allreduce_sum(all.data(), all.size());
  return all;
}

}  // namespace

// ---- Inside mpirun -----------------------------------------------------------

TEST(MpiInside, DISABLED_Collectives) {
  if (!sys::launched_by_mpi()) GTEST_SKIP() << "runs under mpirun only";
  auto comm = make_mpi_communicator();
  const int n = comm->size(), me = comm->rank();
  EXPECT_EQ(comm->backend(), "mpi");
  for (size_t count : {size_t{0}, size_t{1}, size_t{7}, size_t{1000}, size_t{421643}}) {
    // Small integers: the sums are exact whatever the order.
    std::vector<float> f(count);
    std::vector<double> d(count);
    for (size_t i = 0; i < count; ++i) {
      f[i] = static_cast<float>((me + 1) * (1 + i % 5));
      d[i] = 0.5 * (me + 1) + static_cast<double>(i % 3);
    }
    comm->allreduce_sum(f.data(), count);
    comm->allreduce_sum(d.data(), count);
    const double ranks = n * (n + 1) / 2.0;
    for (size_t i = 0; i < count; ++i) {
      ASSERT_EQ(f[i], static_cast<float>(ranks * (1 + i % 5))) << i;
      ASSERT_EQ(d[i], 0.5 * ranks + n * static_cast<double>(i % 3)) << i;
    }
    // Arbitrary floats: every rank must end with the same bits.
    for (size_t i = 0; i < count; ++i) f[i] = std::sin(0.37f * static_cast<float>(i) + 1.3f * static_cast<float>(me));
    comm->allreduce_sum(f.data(), count);
    const auto hashes = gather(*comm, fnv1a(f.data(), count * sizeof(float)));
    for (int r = 1; r < n; ++r) {
      EXPECT_EQ(hashes[2 * r], hashes[0]) << "rank " << r << " count " << count;
      EXPECT_EQ(hashes[2 * r + 1], hashes[1]) << "rank " << r << " count " << count;
    }
  }
  // bfloat16: small integers are exact; arbitrary values end with the same
  // bits everywhere, and each is within a few bf16 roundings of the float sum.
  for (size_t count : {size_t{1}, size_t{1000}, size_t{421643}}) {
    std::vector<uint16_t> h(count);
    for (size_t i = 0; i < count; ++i) h[i] = float_to_bf16(static_cast<float>((me + 1) * (1 + i % 5)));
    comm->allreduce_sum_bf16(h.data(), count);
    for (size_t i = 0; i < count; ++i)
      ASSERT_EQ(bf16_to_float(h[i]), static_cast<float>(n * (n + 1) / 2 * (1 + i % 5))) << i;
    std::vector<float> exact(count, 0.0f);
    for (int r = 0; r < n; ++r)
      for (size_t i = 0; i < count; ++i)
        exact[i] += bf16_to_float(float_to_bf16(std::sin(0.37f * static_cast<float>(i) + 1.3f * static_cast<float>(r))));
    for (size_t i = 0; i < count; ++i)
      h[i] = float_to_bf16(std::sin(0.37f * static_cast<float>(i) + 1.3f * static_cast<float>(me)));
    comm->allreduce_sum_bf16(h.data(), count);
    for (size_t i = 0; i < count; ++i)
      ASSERT_NEAR(bf16_to_float(h[i]), exact[i], 0.02f * n) << i;
    const auto hashes = gather(*comm, fnv1a(h.data(), count * sizeof(uint16_t)));
    for (int r = 1; r < n; ++r) EXPECT_EQ(hashes[2 * r + 1], hashes[1]) << "bf16, rank " << r << " count " << count;
  }
  for (int root = 0; root < n; ++root) {
    std::vector<float> b(1000, static_cast<float>(me));
    comm->broadcast(b.data(), b.size(), root);
    EXPECT_EQ(b[0], static_cast<float>(root));
    EXPECT_EQ(b[999], static_cast<float>(root));
  }
  EXPECT_THROW(comm->broadcast(nullptr, 0, n), UserError);
  comm->barrier();
}

// GradSync's communication thread all-reduces buckets while this thread
// goes on: the thread rule MPI_THREAD_SERIALIZED needs.
TEST(MpiInside, DISABLED_GradSyncOverlap) {
  if (!sys::launched_by_mpi()) GTEST_SKIP() << "runs under mpirun only";
  auto comm = make_mpi_communicator();
  const int n = comm->size(), me = comm->rank();
  const size_t count = 421642 + 1;
  std::vector<float> g(count);
  GradSync sync(*comm, g.data(), count, 64 * 1024, {0, 320, 18816, 420160, count - 1});
  for (int step = 0; step < 20; ++step) {
    for (size_t i = 0; i < count; ++i) g[i] = static_cast<float>((me + 1) * ((i + step) % 4));
    // Backward: ranges from the end, with work between them.
    const size_t cuts[] = {count, count - 1, 420160, 18816, 320, 0};
    for (int k = 0; k + 1 < 6; ++k) {
      sync.ready(cuts[k + 1], cuts[k] - cuts[k + 1]);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    sync.finish();
    const float scale = 1.0f / static_cast<float>(n);
    ASSERT_EQ(sync.average_scale(), scale);
    for (size_t i = 0; i < count; ++i)
      ASSERT_EQ(g[i] * scale, static_cast<float>(n * (n + 1) / 2 * ((i + step) % 4)) * scale) << "step " << step << " " << i;
  }
}

// A peer that stays silent past the timeout: the waiting rank gets a
// UserError naming the operation (and the job then ends, not hangs).
TEST(MpiInside, DISABLED_Timeout) {
  if (!sys::launched_by_mpi()) GTEST_SKIP() << "runs under mpirun only";
  MpiOptions o;
  o.timeout = std::chrono::milliseconds(500);
  auto comm = make_mpi_communicator(o);
  if (comm->rank() == 1) std::this_thread::sleep_for(std::chrono::seconds(20));
  try {
    comm->barrier();
    ADD_FAILURE() << "the barrier did not time out";
  } catch (const UserError& e) {
    std::printf("rank %d: REPORTED: %s\n", comm->rank(), e.what());
    std::fflush(stdout);
    std::_Exit(3);  // as train_parallel does after an error: mpirun ends the job
  }
}

// Prints the MPI_Iallreduce algorithm OpenMPI's libnbc will use, as MPI's
// tool interface (MPI_T) reads it after make_mpi_communicator().
TEST(MpiInside, DISABLED_IallreduceAlgorithm) {
  if (!sys::launched_by_mpi()) GTEST_SKIP() << "runs under mpirun only";
  auto comm = make_mpi_communicator(mpi_options_from_env());
  int provided = 0;
  ASSERT_EQ(MPI_T_init_thread(MPI_THREAD_SINGLE, &provided), MPI_SUCCESS);
  int index = -1;
  ASSERT_EQ(MPI_T_cvar_get_index("coll_libnbc_iallreduce_algorithm", &index), MPI_SUCCESS);
  MPI_T_cvar_handle handle;
  int count = 0;
  ASSERT_EQ(MPI_T_cvar_handle_alloc(index, nullptr, &handle, &count), MPI_SUCCESS);
  ASSERT_EQ(count, 1);
  int value = -1;
  ASSERT_EQ(MPI_T_cvar_read(handle, &value), MPI_SUCCESS);
  std::printf("rank %d: iallreduce algorithm %d\n", comm->rank(), value);
  MPI_T_cvar_handle_free(&handle);
  MPI_T_finalize();
}

// The all-reduce of one model gradient (421,642 floats, 1.7 MB), for the
// README's measurement: mpirun -np 2 build/tests/test_dist
// --gtest_also_run_disabled_tests --gtest_filter=MpiInside.DISABLED_AllreduceBench
TEST(MpiInside, DISABLED_AllreduceBench) {
  if (!sys::launched_by_mpi()) GTEST_SKIP() << "runs under mpirun only";
  auto comm = make_mpi_communicator(mpi_options_from_env());
  const size_t n = 421642;
  std::vector<float> x(n, 1.0f);
  for (int i = 0; i < 20; ++i) comm->allreduce_sum(x.data(), n);
  std::vector<double> t;
  for (int i = 0; i < 300; ++i) {
    comm->barrier();
    const auto t0 = std::chrono::steady_clock::now();
    comm->allreduce_sum(x.data(), n);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e3);
  }
  std::sort(t.begin(), t.end());
  if (comm->rank() == 0)
    std::printf("MPI allreduce of %zu floats (%.2f MB), %d ranks: median %.3f ms (p10 %.3f, p90 %.3f)\n", n,
                n * 4.0 / 1e6, comm->size(), t[t.size() / 2], t[t.size() / 10], t[t.size() * 9 / 10]);
}

// ---- Outside: the real mpirun ------------------------------------------------

TEST(MpiCollectives, ExactSumsSameBitsBroadcastAndBarrierAt1To4Ranks) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed (scripts/install_deps.sh installs openmpi-bin)";
  for (int n = 1; n <= 4; ++n) {
    const auto r = under_mpirun(n, "MpiInside.DISABLED_Collectives");
    EXPECT_EQ(r.code, 0) << n << " ranks:\n" << r.output;
    EXPECT_NE(r.output.find("[  PASSED  ] 1 test"), std::string::npos) << r.output;
  }
}

TEST(MpiCollectives, GradSyncOverlapsOnTheCommunicationThread) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  for (int n : {2, 3}) {
    const auto r = under_mpirun(n, "MpiInside.DISABLED_GradSyncOverlap");
    EXPECT_EQ(r.code, 0) << n << " ranks:\n" << r.output;
    EXPECT_NE(r.output.find("[  PASSED  ] 1 test"), std::string::npos) << r.output;
  }
}

TEST(MpiCollectives, AllreduceRunsAsARingUnlessTheUserChoseAnother) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  // Ring: both ranks copy and sum half of the buffer (libnbc's own choice
  // for in-place buffers and < 4 ranks is a binomial tree: twice as slow).
  auto r = under_mpirun(2, "MpiInside.DISABLED_IallreduceAlgorithm");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 0: iallreduce algorithm 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 1: iallreduce algorithm 1"), std::string::npos) << r.output;
  // A user's explicit choice is kept.
  r = under_mpirun(2, "MpiInside.DISABLED_IallreduceAlgorithm", {"OMPI_MCA_coll_libnbc_iallreduce_algorithm=4"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 0: iallreduce algorithm 4"), std::string::npos) << r.output;
}

TEST(MpiCollectives, ASilentPeerTimesOutInsteadOfHanging) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  const auto r = under_mpirun(2, "MpiInside.DISABLED_Timeout");
  EXPECT_NE(r.code, 0);
  EXPECT_LT(r.seconds, 15.0) << r.output;
  EXPECT_NE(r.output.find("rank 0: REPORTED: rank 0: MPI barrier waited more than 0.5 s for the other ranks"),
            std::string::npos)
      << r.output;
}

TEST(MpiLaunch, MpirunArguments) {
  MpirunOptions o;
  o.world_size = 2;
  o.cores = 2;
  o.argv = {"/bin/prog", "--x"};
  EXPECT_EQ(mpirun_arguments(o), (std::vector<std::string>{"-np", "2", "/bin/prog", "--x"}));
  o.world_size = 4;
  EXPECT_EQ(mpirun_arguments(o),
            (std::vector<std::string>{"-np", "4", "--oversubscribe", "--bind-to", "none", "/bin/prog", "--x"}));
  o.world_size = 1;
  o.threads_per_rank = 2;
  EXPECT_EQ(mpirun_arguments(o), (std::vector<std::string>{"-np", "1", "--bind-to", "none", "/bin/prog", "--x"}));
}

TEST(MpiLaunch, ReadsMpirunsFailureReport) {
  EXPECT_EQ(mpirun_failure("---\nmpirun noticed that process rank 3 with PID 0 on node n7 exited on signal 9 "
                           "(Killed).\n---\n"),
            "rank 3 (on n7) was killed by signal 9 (SIGKILL)");
  EXPECT_EQ(mpirun_failure("mpirun detected that one or more processes exited with non-zero status, thus causing\n"
                           "the job to be terminated. The first process to do so was:\n\n"
                           "  Process name: [[32131,1],1]\n  Exit code:    3\n"),
            "rank 1 exited with status 3");
  EXPECT_EQ(mpirun_failure("all fine\n"), "");
}

TEST(MpiLaunch, MissingMpirunIsAUserError) {
  MpirunOptions o;
  o.argv = {"/bin/true"};
  o.mpirun = "no-such-mpirun-xyz";
  try {
    launch_mpirun(o);
    ADD_FAILURE() << "launched without mpirun";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("was not found in PATH"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("openmpi-bin"), std::string::npos) << e.hint();
  }
}

// A rank that fails under launch_mpirun: its exit status comes back, with
// one line naming the rank.
TEST(MpiLaunch, AFailedRankIsNamed) {
  if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed";
  MpirunOptions o;
  o.world_size = 2;
  o.cores = 2;
  o.job_name = "mpi-test";
  o.argv = {"/bin/sh", "-c", "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then exit 5; fi; sleep 5"};
  testing::internal::CaptureStderr();
  const auto t0 = std::chrono::steady_clock::now();
  const int code = launch_mpirun(o);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 5) << err;
  EXPECT_LT(took, 4.5) << "the other rank was not stopped";
  // mpirun names the failed rank in a second report block ("Process name:
  // [[j,1]] Exit code: 5"), which, under load, it sometimes does not print
  // (seen once in a CI trial). Then only the status can be passed on, and
  // the launcher says so instead of guessing.
  const bool named = err.find("mpi-test: rank 1 exited with status 5; mpirun stopped the other ranks") != std::string::npos;
  const bool unnamed = err.find("mpi-test: the MPI job failed: mpirun exited with status 5") != std::string::npos &&
                       err.find("Process name:") == std::string::npos;
  EXPECT_TRUE(named || unnamed) << err;
}
