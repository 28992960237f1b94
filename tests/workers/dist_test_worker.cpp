// Worker processes for the multi-process tests of src/dist (and a small
// all-reduce benchmark). Started by launch_local, which sets RANK,
// WORLD_SIZE, DDP_RENDEZVOUS_DIR, DDP_JOB_ID.
//
//   dist_test_worker collectives            exact sums / broadcast, sizes 1 .. 421642
//   dist_test_worker die <victim> <kill|exit3> <sleep|allreduce>
//                                           victim dies after joining; the others sleep or
//                                           all-reduce until they notice
//   dist_test_worker hang <victim>          victim sleeps forever; the others all-reduce
//   dist_test_worker late <victim> <ms>     victim sleeps ms before joining; then all run collectives
//   dist_test_worker gradsync <count> <bucket_bytes> <steps>
//   dist_test_worker bench <floats> <reps>  rank 0 prints the median all-reduce time
//   dist_test_worker clocks                 every rank's clock offset: on one machine, exactly 0
//   dist_test_worker launch <n> <mode...>   act as the launcher for n copies of <mode...>
//
// If DDP_TEST_OUT is set, each rank writes DDP_TEST_OUT/rank<r>.info with its
// pid and rendezvous directory before doing anything else.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "dist/clock_sync.h"
#include "dist/gloo_communicator.h"
#include "dist/grad_sync.h"
#include "dist/launcher.h"

using namespace ddp;
using namespace ddp::dist;

namespace {

int g_rank = -1;

[[noreturn]] void fail(const std::string& msg) {
  std::fprintf(stderr, "worker rank %d: FAILED: %s\n", g_rank, msg.c_str());
  std::exit(2);
}

void write_info() {
  const char* out = std::getenv("DDP_TEST_OUT");
  if (!out || !*out) return;
  const char* rdv = std::getenv("DDP_RENDEZVOUS_DIR");
  std::string path = std::string(out) + "/rank" + std::to_string(g_rank) + ".info";
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) fail("cannot write " + tmp);
  std::fprintf(f, "%d\n%s\n", static_cast<int>(getpid()), rdv ? rdv : "");
  std::fclose(f);
  std::rename(tmp.c_str(), path.c_str());
}

std::unique_ptr<Communicator> join() {
  GlooOptions o = gloo_options_from_env();
  return make_gloo_communicator(o);
}

int collectives() {
  auto comm = join();
  const int r = comm->rank(), w = comm->size();
  const long s = static_cast<long>(w) * (w + 1) / 2;  // sum over ranks of (rank + 1)
  // 1, 1000 and the model's 421642 parameters; plus small and odd sizes,
  // which leave some ranks' chunks short or empty.
  for (size_t n : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{1000}, size_t{65537},
                   size_t{421642}}) {
    std::vector<float> f(n);
    for (size_t i = 0; i < n; ++i) f[i] = static_cast<float>((r + 1) * (static_cast<long>(i % 101) - 50));
    comm->allreduce_sum(f.data(), n);
    for (size_t i = 0; i < n; ++i) {
      float want = static_cast<float>(s * (static_cast<long>(i % 101) - 50));
      if (f[i] != want)
        fail("float all-reduce n=" + std::to_string(n) + " [" + std::to_string(i) + "] = " +
             std::to_string(f[i]) + ", want " + std::to_string(want));
    }
    std::vector<double> d(n);
    for (size_t i = 0; i < n; ++i) d[i] = (r + 1) * 1.0e6 + static_cast<double>(i) - 7.0 * r;
    comm->allreduce_sum(d.data(), n);
    for (size_t i = 0; i < n; ++i) {
      double want = s * 1.0e6 + static_cast<double>(w) * static_cast<double>(i) -
                    7.0 * (static_cast<double>(w) * (w - 1) / 2);
      if (d[i] != want)
        fail("double all-reduce n=" + std::to_string(n) + " [" + std::to_string(i) + "] = " +
             std::to_string(d[i]) + ", want " + std::to_string(want));
    }
    for (int root : {0, w - 1, w / 2}) {
      std::vector<float> b(n);
      for (size_t i = 0; i < n; ++i) b[i] = static_cast<float>(r * 1000 + static_cast<long>(i % 1000));
      comm->broadcast(b.data(), n, root);
      for (size_t i = 0; i < n; ++i) {
        float want = static_cast<float>(root * 1000 + static_cast<long>(i % 1000));
        if (b[i] != want)
          fail("broadcast root=" + std::to_string(root) + " n=" + std::to_string(n) + " [" +
               std::to_string(i) + "] = " + std::to_string(b[i]) + ", want " +
               std::to_string(want));
      }
    }
    comm->barrier();
  }
  return 0;
}

int die(int victim, const std::string& how, const std::string& peers) {
  auto comm = join();
  comm->barrier();
  if (comm->rank() == victim) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (how == "kill") ::raise(SIGKILL);
    if (how == "exit3") std::_Exit(3);
    fail("unknown way to die: " + how);
  }
  if (peers == "sleep") {
    std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
  }
  std::vector<float> x(100000, 1.0f);
  for (;;) comm->allreduce_sum(x.data(), x.size());  // throws once the victim is gone
}

int hang(int victim) {
  auto comm = join();
  if (comm->rank() == victim) {
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(60));
  }
  std::vector<float> x(1000, 1.0f);
  comm->allreduce_sum(x.data(), x.size());
  fail("all-reduce returned although rank " + std::to_string(victim) + " never joined it");
}

// Rank r's gradient value at element i in step `step` (integer-valued, so
// sums are exact in any order).
float grad_value(int r, size_t i, int step) {
  return static_cast<float>(static_cast<long>((i * 7 + static_cast<size_t>(step) * 13) % 61) - 30 +
                            r * 5 - step);
}

int gradsync(size_t count, size_t bucket_bytes, int steps) {
  auto comm = join();
  const int r = comm->rank(), w = comm->size();
  std::vector<float> g(count);
  GradSync sync(*comm, g.data(), count, bucket_bytes);
  const size_t per = std::max<size_t>(1, bucket_bytes / sizeof(float));
  const size_t want_buckets = (count + per - 1) / per;
  if (sync.num_buckets() != want_buckets)
    fail("num_buckets " + std::to_string(sync.num_buckets()) + ", want " +
         std::to_string(want_buckets));
  // Uneven ranges, different on every rank and every step.
  const size_t pattern[] = {1, 7, 1000, 33, 50000, 2, 12345, 640, 99999};
  for (int step = 0; step < steps; ++step) {
    for (size_t i = 0; i < count; ++i) g[i] = grad_value(r, i, step);
    size_t hi = count, k = static_cast<size_t>(r * 3 + step);
    while (hi > 0) {
      size_t n = std::min(hi, pattern[k++ % (sizeof pattern / sizeof pattern[0])]);
      // Backward would write these gradients now; they are already final.
      sync.ready(hi - n, n);
      hi -= n;
    }
    double waited = sync.finish();
    if (!(waited >= 0)) fail("negative wait");
    if (w > 1 && !(sync.last_step_comm_seconds() > 0)) fail("no communication time recorded");
    const float scale = 1.0f / static_cast<float>(w);
    for (size_t i = 0; i < count; ++i) {
      float sum = 0;
      for (int q = 0; q < w; ++q) sum += grad_value(q, i, step);
      float want = w > 1 ? sum * scale : sum;
      if (g[i] * sync.average_scale() != want)
        fail("step " + std::to_string(step) + " grads[" + std::to_string(i) + "] = " +
             std::to_string(g[i] * sync.average_scale()) + ", want " + std::to_string(want));
    }
  }
  return 0;
}

int bench(size_t n, int reps) {
  auto comm = join();
  std::vector<float> x(n, 1.0f);
  for (int i = 0; i < 20; ++i) comm->allreduce_sum(x.data(), n);  // warm up
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    comm->barrier();
    auto t0 = std::chrono::steady_clock::now();
    comm->allreduce_sum(x.data(), n);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  // Back to back (as the buckets of a step go): mean per call over batches of 20.
  std::vector<double> b;
  for (int i = 0; i < std::max(1, reps / 20); ++i) {
    comm->barrier();
    auto t0 = std::chrono::steady_clock::now();
    for (int j = 0; j < 20; ++j) comm->allreduce_sum(x.data(), n);
    b.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 20);
  }
  // Every rank's time is the same operation; report rank 0's distribution.
  std::sort(t.begin(), t.end());
  std::sort(b.begin(), b.end());
  if (comm->rank() == 0) {
    const char* algo = std::getenv("DDP_GLOO_ALGORITHM");
    std::printf("allreduce %zu floats (%.2f MB) ranks=%d algorithm=%s: single call median %.3f ms "
                "(p10 %.3f, p90 %.3f, min %.3f; %d reps); back-to-back median %.3f ms/call\n",
                n, n * 4.0 / 1e6, comm->size(), algo ? algo : "default", t[t.size() / 2] * 1e3,
                t[t.size() / 10] * 1e3, t[t.size() * 9 / 10] * 1e3, t[0] * 1e3, reps,
                b[b.size() / 2] * 1e3);
  }
  return 0;
}

// Ranks on one machine share one clock: every rank must find every offset 0
// (same_clock), the measured interval containing 0, and a positive round trip.
int clocks() {
  auto comm = join();
  const std::vector<ClockOffset> c = synchronise_clocks(*comm, 8);
  if (static_cast<int>(c.size()) != comm->size()) fail("one offset per rank expected");
  for (size_t r = 0; r < c.size(); ++r) {
    const auto& o = c[r];
    std::printf("rank %d sees rank %zu: offset %lld ns, measured %lld +- %lld ns\n", comm->rank(), r,
                static_cast<long long>(o.offset_ns), static_cast<long long>(o.measured_ns),
                static_cast<long long>(o.round_trip_ns / 2));
    if (!o.same_clock || o.offset_ns != 0 || o.uncertainty_ns != 0) fail("rank " + std::to_string(r) + ": not one clock");
    if (r > 0 && (o.round_trip_ns <= 0 || std::llabs(o.measured_ns) > (o.round_trip_ns + 1) / 2))
      fail("rank " + std::to_string(r) + ": the measured interval does not contain 0");
  }
  comm->barrier();
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 2) fail("usage: dist_test_worker <mode> ...");
  std::string mode = argv[1];
  if (mode == "launch") {
    if (argc < 4) fail("usage: dist_test_worker launch <n> <mode...>");
    LaunchOptions lo;
    lo.world_size = std::atoi(argv[2]);
    lo.argv.push_back(argv[0]);
    for (int i = 3; i < argc; ++i) lo.argv.push_back(argv[i]);
    lo.job_name = "dist_test_worker";
    return launch_local(lo);
  }
  if (const char* r = std::getenv("RANK")) g_rank = std::atoi(r);
  write_info();
  if (mode == "collectives") return collectives();
  if (mode == "die" && argc == 5) return die(std::atoi(argv[2]), argv[3], argv[4]);
  if (mode == "hang" && argc == 3) return hang(std::atoi(argv[2]));
  if (mode == "late" && argc == 4) {
    if (g_rank == std::atoi(argv[2])) std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(argv[3])));
    return collectives();
  }
  if (mode == "gradsync" && argc == 5)
    return gradsync(std::strtoull(argv[2], nullptr, 10), std::strtoull(argv[3], nullptr, 10),
                    std::atoi(argv[4]));
  if (mode == "clocks") return clocks();
  if (mode == "bench" && argc == 4) return bench(std::strtoull(argv[2], nullptr, 10), std::atoi(argv[3]));
  fail("bad arguments for mode " + mode);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    if (!e.hint().empty()) std::fprintf(stderr, "hint: %s\n", e.hint().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "worker rank %d: unexpected exception: %s\n", g_rank, e.what());
    return 2;
  }
}
