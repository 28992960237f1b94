// Runs one command on every node of an emulated network at once, as a
// cluster's launcher would start one process per machine, and supervises
// them as one job: when one fails or the user interrupts, the others are
// stopped too.
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "netemu/network.h"

namespace ddp::netemu {

// Replaces, in every argument, {node} (the node's index), {nnodes}, {iface},
// {addr} (its IPv4 address), {cores} (its core list, e.g. "0-1"), {ncores}
// (how many) and {rendezvous} (`rendezvous`, the same on every node). Other
// text is kept as it is.
std::vector<std::string> expand_placeholders(const std::vector<std::string>& argv, const EmulatedNetwork& net,
                                             int node, const std::string& rendezvous = "");

struct NodeJobOptions {
  std::vector<std::string> argv;  // argv[0] a path; with placeholders
  bool pin = true;                // pinned to the node's cores (EmulatedNetwork::command)
  std::string rendezvous;         // what {rendezvous} becomes (a directory every node can reach)
  // Every line either stream of node `node` writes.
  std::function<void(int node, const std::string& line, bool is_stderr)> on_line;
  // After the first failure (or a stop signal), the other nodes get SIGTERM,
  // then SIGKILL after grace_s.
  double grace_s = 10;
};

struct NodeJobResult {
  std::vector<int> exit_status;  // per node, as a shell reports it (128 + signal)
  int first_failed_node = -1;    // the node whose failure stopped the job (-1: none)
  // The job's: the blamed node's (the first to fail, or one killed by a
  // signal within 0.5 s of it: its neighbours only lost their peer), 128 +
  // the stop signal, or 0.
  int status = 0;
};

// Runs the command on every node and waits for all of them. While it runs,
// a signal number stored in `stop` (e.g. by a SIGINT handler) is forwarded
// to every node's process, and SIGKILL follows after grace_s. Call it from
// the thread that created the network.
NodeJobResult run_on_nodes(const EmulatedNetwork& net, const NodeJobOptions& options, const std::atomic<int>& stop);

}  // namespace ddp::netemu
