// emulated_cluster: an emulated cluster network on this machine (one
// network namespace per node, shaped veth links to a bridge), to measure
// it, to hold it open for commands run by hand, or to run one command on
// every node, e.g. train_parallel --nnodes N --node-rank {node} ...
// Everything it creates vanishes when it ends, however it ends.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <iostream>
#include <mutex>
#include <optional>

#include "common/error.h"
#include "dist/job_secret.h"
#include "netemu/describe.h"
#include "netemu/measure.h"
#include "netemu/network.h"
#include "netemu/node_jobs.h"
#include "sys/env.h"
#include "sys/job_dir.h"

using namespace ddp;

namespace {

std::atomic<int> g_stop{0};

void on_signal(int sig) {
  int none = 0;
  g_stop.compare_exchange_strong(none, sig);
}

int run(const netemu::NetworkOptions& net_options, bool measure, double seconds, bool hold, bool pin,
        const std::vector<std::string>& command) {
  if (!measure && !hold && command.empty())
    throw UserError("nothing to do", "give --measure, --hold, or a command to run on every node after --");
  if (measure && net_options.nodes < 2) throw UserError("--measure needs 2 nodes or more", "give --nodes 2");
  netemu::EmulatedNetwork net(net_options);
  std::cout << netemu::describe_network(net);
  for (const auto& w : net.warnings()) std::cout << "warning: " << w << "\n";
  std::cout << std::flush;
  if (measure) {
    std::cout << netemu::describe_goodput(net, 0, 1, netemu::measure_goodput(net, 0, 1, seconds)) << "\n";
    std::cout << netemu::describe_round_trip(0, 1, netemu::measure_round_trip(net, 0, 1), 1) << std::endl;
  }
  if (!command.empty()) {
    netemu::NodeJobOptions o;
    o.argv = command;
    o.pin = pin;
    // {rendezvous}: a private job directory, removed however this ends (its
    // guardian removes it after a SIGKILL), and a fresh job secret for the
    // nodes (DDP_JOB_SECRET, inherited; unless the user set one).
    std::optional<sys::JobDir> dir;
    if (std::any_of(command.begin(), command.end(),
                    [](const std::string& a) { return a.find("{rendezvous}") != std::string::npos; })) {
      dir.emplace(sys::env_string("TMPDIR", "/tmp"));
      o.rendezvous = dir->path();
      if (!getenv(dist::kJobSecretVar)) setenv(dist::kJobSecretVar, dist::new_job_secret().c_str(), 1);
    }
    std::mutex mu;
    o.on_line = [&](int node, const std::string& line, bool is_stderr) {
      std::lock_guard<std::mutex> lock(mu);
      (is_stderr ? std::cerr : std::cout) << "[node " << node << "] " << line << std::endl;
    };
    const auto r = netemu::run_on_nodes(net, o, g_stop);
    if (r.first_failed_node >= 0)
      std::cerr << "emulated_cluster: node " << r.first_failed_node << " ended with status " << r.status
                << "; stopped the other nodes" << std::endl;
    return r.status;
  }
  if (hold) {
    std::cout << "holding the network until Ctrl-C" << std::endl;
    while (g_stop.load() == 0) pause();
  }
  return g_stop.load() ? 128 + g_stop.load() : 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int s : {SIGINT, SIGTERM, SIGHUP}) signal(s, on_signal);
  CLI::App app{"An emulated cluster network on this machine: one network namespace per node, joined through a "
               "bridge by veth links shaped to RATE in both directions. Needs root.",
               "emulated_cluster"};
  netemu::NetworkOptions o;
  std::string rate;
  bool measure = false, hold = false, no_pin = false;
  double seconds = 2;
  std::vector<std::string> command;
  app.add_option("--nodes", o.nodes, "Number of nodes")->check(CLI::Range(1, 254))->capture_default_str();
  app.add_option("--rate", rate, "Each link's rate, and where the kernel has netem a one-way delay: "
                                 "RATE[,DELAY], e.g. 1gbit, 10gbit, 1gbit,100us")
      ->required();
  app.add_option("--cores-per-node", o.cores_per_node, "Cores each node's processes are pinned to (0: cores / nodes)")
      ->capture_default_str();
  app.add_flag("--no-pin", no_pin, "Do not pin the nodes' processes to their cores");
  app.add_flag("--measure", measure, "Measure the TCP goodput and round trip from node 0 to node 1");
  app.add_option("--measure-seconds", seconds, "Length of the goodput measurement")->capture_default_str();
  app.add_flag("--hold", hold, "Keep the network up until Ctrl-C (enter a node with the nsenter command shown)");
  app.add_option("command", command,
                 "After --: a command run on every node at once; {node}, {nnodes}, {iface}, {addr}, {cores} and "
                 "{ncores} are replaced by each node's own, {rendezvous} by a private directory made for the "
                 "job (with a fresh job secret in DDP_JOB_SECRET)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    o.link = netemu::parse_link_spec(rate);
    return run(o, measure, seconds, hold, !no_pin, command);
  } catch (const UserError& e) {
    std::cerr << "emulated_cluster: error: " << e.what() << "\n";
    if (!e.hint().empty()) std::cerr << "  fix: " << e.hint() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "emulated_cluster: error: " << e.what() << "\n";
    return 1;
  }
}
