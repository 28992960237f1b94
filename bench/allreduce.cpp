#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "bench.h"
#include "dist/gloo_communicator.h"
#include "dist/grad_sync.h"
#include "train/step.h"

namespace ddp::bench {
namespace {

using Clock = std::chrono::steady_clock;

// One rank: GradSync over the model's gradient buffer, laid out as the
// trainer lays it out; every step starts together (a barrier) and rank 0
// writes the time of each step's ready() .. finish() to `out`.
int rank_main(int rank, int world, const std::string& dir, const std::string& job, const std::string& algorithm,
              dist::Compression compression, int steps, const std::string& out) {
  dist::GlooOptions o;
  o.rank = rank;
  o.size = world;
  o.rendezvous_dir = dir;
  o.prefix = job;
  o.algorithm = algorithm;
  o.timeout = std::chrono::milliseconds(60000);
  auto comm = dist::make_gloo_communicator(o);
  const train::GradientLayout layout = train::gradient_layout(64 * 1024);
  const auto& segments = layout.segments;  // increasing; the last is the stop flag's slot
  std::vector<float> g(layout.count, 0.001f * static_cast<float>(rank + 1));
  dist::GradSync sync(*comm, g.data(), layout.count, 64 * 1024, segments, compression);
  std::vector<double> t;
  for (int s = 0; s < steps + 10; ++s) {
    comm->barrier();
    const auto t0 = Clock::now();
    // As backward reports them: the stop flag, then each layer, last first.
    sync.ready(layout.stop_slot, layout.count - layout.stop_slot);
    for (size_t k = segments.size() - 1; k-- > 0;) sync.ready(segments[k], segments[k + 1] - segments[k]);
    sync.finish();
    if (s >= 10) t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  comm->barrier();
  if (rank == 0) {
    std::ofstream f(out);
    for (double x : t) f << x << "\n";
    if (!f) return 3;
  }
  return 0;
}

}  // namespace

std::vector<double> grad_allreduce_seconds(int world, const std::string& algorithm, bool bf16, int steps) {
  namespace fs = std::filesystem;
  char tmpl[] = "/tmp/ddp-bench-ar-XXXXXX";
  if (!mkdtemp(tmpl)) return {};
  const std::string dir = tmpl, out = dir + "/times.txt";
  const std::string job = "bench-" + std::to_string(getpid()) + (bf16 ? "-bf16" : "-none");
  std::fflush(nullptr);
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      int status = 1;
      try {
        status = rank_main(r, world, dir, job, algorithm, bf16 ? dist::Compression::bf16 : dist::Compression::none,
                           steps, out);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "all-reduce benchmark, rank %d: %s\n", r, e.what());
      }
      std::fflush(nullptr);
      _exit(status);
    }
    pids.push_back(pid);
  }
  bool ok = true;
  for (pid_t p : pids) {
    int status = 0;
    waitpid(p, &status, 0);
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  std::vector<double> t;
  if (ok) {
    std::ifstream f(out);
    for (double x; f >> x;) t.push_back(x);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return t;
}

}  // namespace ddp::bench
