// An emulated cluster network on one machine: K nodes, each its own network
// namespace with one interface, joined through a bridge in a "switch"
// namespace of its own by veth links, each link shaped in both directions
// (tbf at the given rate; netem for a delay where the kernel has it).
//
//   node i: eth0 10.78.0.(i+1)/24 --veth--> switch: veth<i> -- br0
//           tbf on eth0 (node -> switch)    tbf on veth<i> (switch -> node)
//
// So between two nodes a message crosses two shaped queues at the same rate,
// as through a real switch, and each direction has the full rate (full
// duplex). All namespaces are anonymous and held by NetnsHolder processes:
// when this object is destroyed, or its owner dies however it dies, the
// kernel removes namespaces, links, bridge and qdiscs. The addresses exist
// only inside these namespaces.
//
// Needs CAP_NET_ADMIN and CAP_SYS_ADMIN (root): checked before anything is
// created. Uses ip and tc (iproute2) and nsenter and taskset (util-linux).
#pragma once
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "netemu/link_spec.h"
#include "netemu/netns.h"

namespace ddp::netemu {

// Throws ddp::UserError (with the fix) when `link` asks for a delay and this
// kernel has no netem qdisc, or the capabilities are missing; does nothing
// for a rate alone. Builds nothing that outlives it (one probe namespace).
void require_delay_support(const LinkSpec& link);

struct NetworkOptions {
  int nodes = 2;            // 2..254
  LinkSpec link;            // parse_link_spec("1gbit")
  // Cores each node's processes are pinned to: node i gets the allowed
  // cores [i*k, (i+1)*k) counted round (modulo their number). 0: the allowed
  // cores divided evenly, at least 1.
  int cores_per_node = 0;
};

struct Node {
  int index = 0;
  std::string iface;    // "eth0" (the same name on every node, as on real machines)
  std::string address;  // IPv4, e.g. "10.78.0.1"
  int prefix_length = 24;
  std::string netns_path;  // /proc/<holder>/ns/net
  std::vector<int> cores;  // CPU numbers this node's processes are pinned to
};

class EmulatedNetwork {
 public:
  // Builds the whole network, or throws ddp::UserError (missing capability
  // or program, a DELAY without netem, a tc or ip failure) having created
  // nothing that outlives the exception. Create it on the main thread (the
  // holder processes die with the thread that created them).
  explicit EmulatedNetwork(const NetworkOptions& options);
  ~EmulatedNetwork();
  EmulatedNetwork(const EmulatedNetwork&) = delete;
  EmulatedNetwork& operator=(const EmulatedNetwork&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  const Node& node(int i) const;
  const LinkSpec& link() const { return link_; }
  // The shaper's bucket: after a pause, up to this many bytes (Ethernet
  // frames) leave at once instead of at the rate. A model of the link can
  // subtract it from a transfer that starts on an idle link.
  double bucket_bytes() const;
  // Remarks a user should see (e.g. a rate above what this machine's cores
  // can shape), one sentence each.
  const std::vector<std::string>& warnings() const { return warnings_; }

  // argv run inside node i: its network namespace and, when `pin`, its
  // cores (a process that binds itself to its share of the cores it may use,
  // as train_parallel does, then stays within them). The result starts with
  // nsenter; give it to any process runner.
  std::vector<std::string> command(int i, const std::vector<std::string>& argv, bool pin = true) const;

  // The inodes of every namespace this network made (the switch's first):
  // a test's way to check that none outlives it.
  std::vector<ino_t> netns_inodes() const;
  // The holder processes' pids (the switch's first).
  std::vector<pid_t> holder_pids() const;

 private:
  void build_switch();
  void build_node(int i);
  void shape(const std::string& netns_path, const std::string& dev);

  LinkSpec link_;
  std::string ip_, tc_, nsenter_, taskset_;
  std::unique_ptr<NetnsHolder> switch_;
  std::vector<std::unique_ptr<NetnsHolder>> holders_;
  std::vector<Node> nodes_;
  std::vector<std::string> warnings_;
};

// Allowed cores of this process (its affinity mask), ascending.
std::vector<int> allowed_cores();

// "0", "0-1", "0,2": as taskset -c reads it.
std::string core_list_text(const std::vector<int>& cores);

}  // namespace ddp::netemu
