// run_experiments --network RATE[,DELAY]: every rank of a parallel run is a
// "machine" of its own, in its own network namespace on an emulated cluster
// network (src/netemu), pinned to its own core(s), and the ranks meet
// through a file:// rendezvous as on a real cluster. Before the runs, a
// sweep of Gloo all-reduce sizes between two such nodes and their round
// trip calibrate the scaling model's alpha and beta for that network.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiments/suite.h"
#include "netemu/link_spec.h"
#include "sys/subprocess.h"

namespace ddp::experiments {

// Parses --network and checks that this process may emulate a network
// (root, or CAP_NET_ADMIN and CAP_SYS_ADMIN). Throws ddp::UserError naming
// the cause and the fix; call it before any run.
netemu::LinkSpec check_network(const std::string& spec);

// Runs a parallel trainer with `processes` ranks, one per emulated node:
// `argv` is the trainer's command as on one machine (train_parallel
// --world-size N ...); each node gets it with --nnodes N --node-rank i
// --nproc-per-node 1 --rendezvous file://DIR --iface eth0. Its lines go to
// `on_line` (node 0's as they are, the others' prefixed "[node i] ") and to
// `log_path`. A signal in stop_flag() (signals.h) reaches every node. The
// network and the rendezvous directory are gone when it returns.
sys::ChildResult run_on_network(const Suite& s, int processes, const std::vector<std::string>& argv,
                                const std::string& log_path,
                                const std::function<void(const std::string& line, bool is_stderr)>& on_line);

// The "network" block of performance_metrics.json: the link asked for
// (rate_bit_per_s, delay_s), the shaper's bucket_bytes, the round trip
// between two nodes, a Gloo ring all-reduce sweep between them (the
// benchmark worker of allreduce_benchmark.h, one rank per node) and the
// alpha_s and beta_bytes_per_s fitted to it; "status": "ok" or "failed"
// with "error". A signal that stopped it is recorded (signals.h).
nlohmann::json measure_network(const Suite& s);

}  // namespace ddp::experiments
