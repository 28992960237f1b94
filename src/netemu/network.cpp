#include "netemu/network.h"

#include <sched.h>

#include <algorithm>
#include <cstdio>

#include "common/error.h"
#include "netemu/privileges.h"
#include "netemu/process.h"

namespace ddp::netemu {

namespace {

// Shaping with a token bucket (tbf) lets a burst of up to the bucket's size
// through at once after the link was idle, which a real link does not: the
// first `burst` bytes of a step's all-reduce would cost nothing. So the
// bucket is as small as the rate allows. It must hold 1.5 packets, or tbf
// splits each packet (veth hands it packets of up to gso_max_size bytes)
// and the rate falls well short; smaller packets allow a smaller bucket but
// cost CPU per byte, which at high rates is the limit on a small machine,
// so they are 32 KiB below 4 Gbit/s and the kernel's 64 KiB above. And it
// must cover 200 us at the rate, or a dequeue that comes late on a busy
// machine loses rate. docs/network-emulation.md has the measurements.
double gso_max_bytes(double rate_bit_per_s) { return rate_bit_per_s < 4e9 ? 32 * 1024 : 64 * 1024; }
double tbf_burst_bytes(double rate_bit_per_s) {
  return std::max(1.5 * gso_max_bytes(rate_bit_per_s), rate_bit_per_s / 8 * 200e-6);
}

// The queue in front of the shaper: deep enough (50 ms at the rate) that a
// TCP sender is throttled by its own small-queue limit, not by drops, as
// behind a switch port with ample buffers.
double limit_bytes(double rate_bit_per_s) { return tbf_burst_bytes(rate_bit_per_s) + rate_bit_per_s / 8 * 0.05; }

std::string integer(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace

std::vector<int> allowed_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cores;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cores.push_back(c);
  if (cores.empty()) cores.push_back(0);
  return cores;
}

std::string core_list_text(const std::vector<int>& cores) {
  std::string s;
  for (size_t i = 0; i < cores.size();) {
    size_t j = i;
    while (j + 1 < cores.size() && cores[j + 1] == cores[j] + 1) ++j;
    s += (s.empty() ? "" : ",") + std::to_string(cores[i]) + (j > i ? "-" + std::to_string(cores[j]) : "");
    i = j + 1;
  }
  return s;
}

EmulatedNetwork::EmulatedNetwork(const NetworkOptions& o) : link_(o.link) {
  if (o.nodes < 1 || o.nodes > 254)
    throw UserError("an emulated network of " + std::to_string(o.nodes) + " nodes", "give 1 to 254 nodes");
  if (!(link_.rate_bit_per_s > 0)) throw UserError("no link rate given", "give one, e.g. 1gbit or 10gbit");
  if (o.cores_per_node < 0) throw UserError("a negative number of cores per node", "give 1 or more (0: automatic)");
  require_capabilities();
  ip_ = program_path("ip");
  tc_ = program_path("tc");
  nsenter_ = program_path("nsenter");
  taskset_ = program_path("taskset");

  const std::vector<int> cores = allowed_cores();
  const int n = static_cast<int>(cores.size());
  const int k = o.cores_per_node > 0 ? o.cores_per_node : std::max(1, n / o.nodes);
  if (o.nodes * k > n)
    warnings_.push_back(std::to_string(o.nodes) + " nodes x " + std::to_string(k) + " core(s) exceed the " +
                        std::to_string(n) + " core(s) this process may use: nodes share cores, so their timings "
                        "are those of an oversubscribed machine.");
  if (link_.rate_bit_per_s > 5e9 * n)
    warnings_.push_back("the rate " + rate_text(link_.rate_bit_per_s) + " is above what " + std::to_string(n) +
                        " core(s) can shape and copy (about 5 Gbit/s per core; 10 Gbit/s on 2 cores): the "
                        "measured goodput will fall short of it, so report the measured figure.");

  build_switch();
  for (int i = 0; i < o.nodes; ++i) {
    Node node;
    node.index = i;
    node.iface = "eth0";
    node.address = "10.78.0." + std::to_string(i + 1);
    for (int j = 0; j < k; ++j) node.cores.push_back(cores[(static_cast<size_t>(i) * k + j) % n]);
    std::sort(node.cores.begin(), node.cores.end());
    node.cores.erase(std::unique(node.cores.begin(), node.cores.end()), node.cores.end());
    nodes_.push_back(node);
    build_node(i);
  }
}

EmulatedNetwork::~EmulatedNetwork() = default;  // the holders' deaths remove everything

double EmulatedNetwork::bucket_bytes() const { return tbf_burst_bytes(link_.rate_bit_per_s); }

const Node& EmulatedNetwork::node(int i) const {
  DDP_ASSERT(i >= 0 && i < size(), "node index out of range");
  return nodes_[static_cast<size_t>(i)];
}

std::vector<std::string> EmulatedNetwork::command(int i, const std::vector<std::string>& argv, bool pin) const {
  std::vector<std::string> a = {nsenter_, "--net=" + node(i).netns_path, "--"};
  if (pin) a.insert(a.end(), {taskset_, "-c", core_list_text(node(i).cores)});
  a.insert(a.end(), argv.begin(), argv.end());
  return a;
}

std::vector<ino_t> EmulatedNetwork::netns_inodes() const {
  std::vector<ino_t> v;
  if (switch_) v.push_back(switch_->inode());
  for (const auto& h : holders_) v.push_back(h->inode());
  return v;
}

std::vector<pid_t> EmulatedNetwork::holder_pids() const {
  std::vector<pid_t> v;
  if (switch_) v.push_back(switch_->pid());
  for (const auto& h : holders_) v.push_back(h->pid());
  return v;
}

namespace {

// Runs argv inside a namespace; throws with the command and its output.
void run_in(const std::string& nsenter, const std::string& netns_path, std::vector<std::string> argv) {
  const std::string shown = joined(argv);
  argv.insert(argv.begin(), {nsenter, "--net=" + netns_path, "--"});
  const ProgramResult r = run_program(argv);
  if (r.exit_status != 0)
    throw UserError("setting up the emulated network failed: '" + shown + "' exited with status " +
                        std::to_string(r.exit_status) + (r.output.empty() ? "" : ": " + r.output),
                    "check that the kernel has veth, bridge and the tbf qdisc (sch_tbf)");
}

}  // namespace

void require_delay_support(const LinkSpec& link) {
  if (!(link.delay_s > 0)) return;
  require_capabilities();
  // Tried where it harms nothing: the loopback of a namespace of its own.
  const NetnsHolder probe_ns;
  const ProgramResult probe = run_program({program_path("nsenter"), "--net=" + probe_ns.path(), "--",
                                           program_path("tc"), "qdisc", "add", "dev", "lo", "root", "netem", "delay",
                                           "1ms"});
  if (probe.exit_status != 0)
    throw UserError("this kernel has no netem qdisc (sch_netem), so the delay in '" + link.text +
                        "' cannot be added to the emulated links",
                    "give the rate alone (e.g. " + link.text.substr(0, link.text.find(',')) +
                        "): the latency is then the veth path's own, which the round-trip measurement reports");
}

void EmulatedNetwork::build_switch() {
  require_delay_support(link_);
  switch_ = std::make_unique<NetnsHolder>();
  const std::string sw = switch_->path();
  run_in(nsenter_, sw, {ip_, "link", "set", "lo", "up"});
  run_in(nsenter_, sw, {ip_, "link", "add", "br0", "type", "bridge"});
  run_in(nsenter_, sw, {ip_, "link", "set", "br0", "up"});
}

void EmulatedNetwork::build_node(int i) {
  holders_.push_back(std::make_unique<NetnsHolder>());
  const NetnsHolder& h = *holders_.back();
  Node& node = nodes_[static_cast<size_t>(i)];
  node.netns_path = h.path();
  const std::string sw = switch_->path(), port = "veth" + std::to_string(i);
  run_in(nsenter_, sw,
         {ip_, "link", "add", port, "type", "veth", "peer", "name", node.iface, "netns", std::to_string(h.pid())});
  run_in(nsenter_, sw, {ip_, "link", "set", port, "master", "br0", "up"});
  shape(sw, port);
  run_in(nsenter_, node.netns_path, {ip_, "link", "set", "lo", "up"});
  run_in(nsenter_, node.netns_path,
         {ip_, "addr", "add", node.address + "/" + std::to_string(node.prefix_length), "dev", node.iface});
  run_in(nsenter_, node.netns_path, {ip_, "link", "set", node.iface, "up"});
  shape(node.netns_path, node.iface);
}

// The egress of `dev`: tbf at the link rate, under netem when a delay is
// asked for. Between two nodes a packet leaves two shaped devices (the
// sender's eth0, the switch's port to the receiver), so each adds half the
// delay.
void EmulatedNetwork::shape(const std::string& netns_path, const std::string& dev) {
  const double rate = link_.rate_bit_per_s;
  std::vector<std::string> tbf = {tc_, "qdisc", "add", "dev", dev};
  if (link_.delay_s > 0) {
    run_in(nsenter_, netns_path,
           {tc_, "qdisc", "add", "dev", dev, "root", "handle", "1:", "netem", "delay",
            integer(link_.delay_s / 2 * 1e6) + "us", "limit", "100000"});
    tbf.insert(tbf.end(), {"parent", "1:1", "handle", "10:"});
  } else {
    tbf.push_back("root");
  }
  tbf.insert(tbf.end(), {"tbf", "rate", integer(rate) + "bit", "burst", integer(tbf_burst_bytes(rate)), "limit",
                         integer(limit_bytes(rate))});
  run_in(nsenter_, netns_path, tbf);
  run_in(nsenter_, netns_path, {ip_, "link", "set", "dev", dev, "gso_max_size", integer(gso_max_bytes(rate))});
}

}  // namespace ddp::netemu
