#include "experiments/network_runs.h"

#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "common/error.h"
#include "dist/job_secret.h"
#include "experiments/allreduce_benchmark.h"
#include "experiments/signals.h"
#include "experiments/text.h"
#include "netemu/measure.h"
#include "netemu/network.h"
#include "netemu/node_jobs.h"
#include "netemu/privileges.h"
#include "sys/env.h"
#include "sys/job_dir.h"
#include "sys/process.h"

namespace ddp::experiments {

using nlohmann::json;
namespace fs = std::filesystem;

netemu::LinkSpec check_network(const std::string& spec) {
  const netemu::LinkSpec link = netemu::parse_link_spec(spec);
  try {
    netemu::require_capabilities();
  } catch (const UserError& e) {
    throw UserError("--network " + spec + ": " + e.what(),
                    e.hint() + "; or leave --network out to run every rank on this machine over loopback");
  }
  try {
    netemu::require_delay_support(link);
  } catch (const UserError& e) {
    throw UserError("--network " + spec + ": " + e.what(), e.hint());
  }
  return link;
}

namespace {

// A private rendezvous directory for one job (sys::JobDir: 0700, removed
// when this goes, and by its guardian process if run_experiments is killed),
// and a fresh job secret for its ranks in DDP_JOB_SECRET, which the nodes'
// processes inherit (never in argv, which ps shows), as train_parallel's own
// launcher hands it to its ranks.
struct RendezvousDir {
  sys::JobDir dir;
  const std::string& path = dir.path();
  RendezvousDir() : dir(sys::env_string("TMPDIR", "/tmp")) {
    setenv(dist::kJobSecretVar, dist::new_job_secret().c_str(), 1);
  }
  ~RendezvousDir() { unsetenv(dist::kJobSecretVar); }
  RendezvousDir(const RendezvousDir&) = delete;
  RendezvousDir& operator=(const RendezvousDir&) = delete;
};

netemu::NetworkOptions network_options(const Suite& s, int nodes) {
  netemu::NetworkOptions no;
  no.nodes = nodes;
  no.link = netemu::parse_link_spec(s.o.network);
  return no;  // cores_per_node 0: the allowed cores divided among the nodes
}

}  // namespace

sys::ChildResult run_on_network(const Suite& s, int processes, const std::vector<std::string>& argv,
                                const std::string& log_path,
                                const std::function<void(const std::string& line, bool is_stderr)>& on_line) {
  const auto t0 = std::chrono::steady_clock::now();
  netemu::EmulatedNetwork net(network_options(s, processes));
  RendezvousDir rdv;
  netemu::NodeJobOptions o;
  o.argv = argv;
  o.argv.insert(o.argv.end(), {"--nnodes", "{nnodes}", "--node-rank", "{node}", "--nproc-per-node", "1",
                               "--rendezvous", "file://" + rdv.path, "--iface", "{iface}"});
  std::mutex mu;
  std::ofstream log(log_path, std::ios::app);
  for (const auto& w : net.warnings()) log << "warning: " << w << "\n";
  o.on_line = [&](int node, const std::string& line, bool is_stderr) {
    std::lock_guard<std::mutex> lock(mu);
    const std::string text = node == 0 ? line : "[node " + std::to_string(node) + "] " + line;
    log << text << std::endl;  // flushed: the log is how a user (or a test) follows a run
    if (on_line && (node == 0 || is_stderr)) on_line(text, is_stderr);
  };
  const netemu::NodeJobResult r = netemu::run_on_nodes(net, o, stop_flag());
  sys::ChildResult res;
  res.exit_status = r.status;
  res.signaled = r.status > 128;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

namespace {

json link_json(const Suite& s, const netemu::EmulatedNetwork& net) {
  return {{"spec", s.o.network},
          {"rate_bit_per_s", net.link().rate_bit_per_s},
          {"delay_s", net.link().delay_s},
          {"bucket_bytes", net.bucket_bytes()},
          {"nodes_measured", 2},
          {"warnings", net.warnings()}};
}

// The benchmark worker on nodes 0 and 1, one rank each; returns its exit status.
int run_benchmark_on_nodes(const Suite& s, const netemu::EmulatedNetwork& net, const std::string& out) {
  RendezvousDir rdv;
  netemu::NodeJobOptions o;
  o.argv = {"/usr/bin/env", "RANK={node}", "WORLD_SIZE=2", "LOCAL_RANK=0", "LOCAL_WORLD_SIZE=1",
            "DDP_RENDEZVOUS_DIR=" + rdv.path, "DDP_JOB_ID=allreduce-benchmark", "DDP_GLOO_HOST={addr}",
            sys::self_exe(), kBenchWorkerFlag, out};
  std::ofstream log(s.dir + "/logs/network_benchmark.log");
  std::mutex mu;
  o.on_line = [&](int node, const std::string& line, bool) {
    std::lock_guard<std::mutex> lock(mu);
    log << "[node " << node << "] " << line << "\n";
  };
  return netemu::run_on_nodes(net, o, stop_flag()).status;
}

// On a shaped link the least-squares line through every size lets the
// latency absorb what the shaper and a busy machine do to the mid sizes (it
// fitted alpha = 650 us and beta above the line rate at 1 Gbit/s). So alpha
// is the smallest message's all-reduce alone (2(p-1) latencies, no bytes to
// speak of), and beta the bytes of the sizes from 256 KiB up over their time
// less those latencies: the rate the gradient's large bucket meets. The
// least-squares pair stays in "fit_least_squares".
void split_latency_and_bandwidth(json& b) {
  const int p = b.value("ranks", 2);
  const json& samples = b["samples"];
  if (samples.empty()) return;
  b["fit_least_squares"] = {{"alpha_s", b["alpha_s"]}, {"beta_bytes_per_s", b["beta_bytes_per_s"]}};
  const double alpha = samples.front()["seconds"].get<double>() / (2.0 * (p - 1));
  double bytes = 0, seconds = 0;
  for (const auto& s : samples)
    if (s["bytes"].get<double>() >= 256 * 1024) {
      bytes += 2.0 * (p - 1) / p * s["bytes"].get<double>();
      seconds += s["seconds"].get<double>() - 2.0 * (p - 1) * alpha;
    }
  if (!(bytes > 0) || !(seconds > 0)) return;
  b["alpha_s"] = alpha;
  b["beta_bytes_per_s"] = bytes / seconds;
  b["method"] = b.value("method", "") +
                "; then alpha from the smallest size alone and beta from the sizes from 256 KiB up (less 2(p-1) alpha)";
}

}  // namespace

json measure_network(const Suite& s) {
  json b = {{"status", "failed"}, {"spec", s.o.network}};
  try {
    netemu::EmulatedNetwork net(network_options(s, 2));
    b = link_json(s, net);
    b["status"] = "failed";
    const netemu::RoundTrip rt = netemu::measure_round_trip(net, 0, 1);
    b["round_trip_s"] = {{"median", rt.median_s}, {"min", rt.min_s}, {"max", rt.max_s}, {"count", rt.count}};
    const std::string out = s.dir + "/network_allreduce_benchmark.json";
    const int rc = run_benchmark_on_nodes(s, net, out);
    if (rc == 128 + SIGINT || rc == 128 + SIGTERM || rc == 128 + SIGHUP) record_signal(rc - 128);
    if (rc != 0) {
      b["error"] = "the all-reduce benchmark between the nodes exited with status " + std::to_string(rc) +
                   " (see logs/network_benchmark.log)";
      return b;
    }
    json fit = fit_benchmark(out, "Gloo ring all-reduce between two emulated nodes (one rank each, own namespace "
                                  "and core), before the training runs; per message size the fastest of several "
                                  "batches of back-to-back calls after a barrier");
    b.update(fit);
    split_latency_and_bandwidth(b);
  } catch (const std::exception& e) {
    b["error"] = e.what();
  }
  return b;
}

}  // namespace ddp::experiments
