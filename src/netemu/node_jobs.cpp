#include "netemu/node_jobs.h"

#include <signal.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "netemu/process.h"

namespace ddp::netemu {

namespace {

using Clock = std::chrono::steady_clock;

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
}

// What the supervisor knows of one node's process.
struct Slot {
  pid_t pid = 0;
  bool done = false;
  int status = -1;
  int signalled = 0;  // the last signal sent to it
};

}  // namespace

std::vector<std::string> expand_placeholders(const std::vector<std::string>& argv, const EmulatedNetwork& net,
                                             int node, const std::string& rendezvous) {
  const Node& n = net.node(node);
  std::vector<std::string> out = argv;
  for (auto& a : out) {
    replace_all(a, "{node}", std::to_string(node));
    replace_all(a, "{nnodes}", std::to_string(net.size()));
    replace_all(a, "{iface}", n.iface);
    replace_all(a, "{addr}", n.address);
    replace_all(a, "{cores}", core_list_text(n.cores));
    replace_all(a, "{ncores}", std::to_string(n.cores.size()));
    replace_all(a, "{rendezvous}", rendezvous);
  }
  return out;
}

NodeJobResult run_on_nodes(const EmulatedNetwork& net, const NodeJobOptions& o, const std::atomic<int>& stop) {
  const int n = net.size();
  std::mutex mu;
  std::vector<Slot> slots(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      const auto argv = net.command(i, expand_placeholders(o.argv, net, i, o.rendezvous), o.pin);
      int status = 127;
      try {
        status = run_streaming(
            argv, [&](pid_t pid) { std::lock_guard<std::mutex> lock(mu); slots[i].pid = pid; },
            [&](const std::string& line, bool err) {
              if (o.on_line) o.on_line(i, line, err);
            });
      } catch (const std::exception& e) {
        if (o.on_line) o.on_line(i, e.what(), true);
      }
      std::lock_guard<std::mutex> lock(mu);
      slots[i].done = true;
      slots[i].status = status;
    });

  NodeJobResult r;
  int sent_to_all = 0;  // the signal every process is to get (a process that starts late gets it too)
  Clock::time_point deadline = Clock::time_point::max();
  auto stop_all = [&](int sig) {
    sent_to_all = sig;
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.grace_s));
  };
  // The node to blame. A node whose ranks only lost their peer ends within
  // milliseconds of the node whose rank was killed, often first: for a
  // moment after the first failure, one killed by a signal (a status above
  // 128) is preferred, as the launcher does for its ranks.
  int blamed = -1;
  Clock::time_point settled = Clock::time_point::max();
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu);
      int running = 0;
      for (int i = 0; i < n; ++i) {
        running += !slots[i].done;
        if (!slots[i].done || slots[i].status == 0 || r.first_failed_node >= 0 || sent_to_all != 0) continue;
        if (blamed < 0) settled = Clock::now() + std::chrono::milliseconds(500);
        if (blamed < 0 || (slots[i].status > 128 && slots[blamed].status <= 128)) blamed = i;
      }
      if (blamed >= 0 && r.first_failed_node < 0 && sent_to_all == 0 &&
          (slots[blamed].status > 128 || running == 0 || Clock::now() >= settled)) {
        r.first_failed_node = blamed;
        r.status = slots[blamed].status;
        stop_all(SIGTERM);
      }
      if (running == 0) break;
      if (const int sig = stop.load(); sig != 0 && sent_to_all == 0) {
        r.status = 128 + sig;
        stop_all(sig);
      }
      if (sent_to_all != 0 && Clock::now() >= deadline) sent_to_all = SIGKILL;
      for (auto& s : slots)
        if (!s.done && s.pid > 0 && s.signalled != sent_to_all && sent_to_all != 0) {
          kill(s.pid, sent_to_all);
          s.signalled = sent_to_all;
        }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& t : threads) t.join();
  for (const auto& s : slots) r.exit_status.push_back(s.status);
  return r;
}

}  // namespace ddp::netemu
