#include "netemu/describe.h"

#include <cstdio>

namespace ddp::netemu {

namespace {

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

}  // namespace

std::string describe_network(const EmulatedNetwork& net) {
  const LinkSpec& l = net.link();
  std::string s = "emulated network: " + std::to_string(net.size()) + " node(s) on a bridge, each link " +
                  rate_text(l.rate_bit_per_s) + " each way" +
                  (l.delay_s > 0 ? ", " + delay_text(l.delay_s) + " one-way delay" : "") + "\n";
  for (int i = 0; i < net.size(); ++i) {
    const Node& n = net.node(i);
    s += "  node " + std::to_string(i) + ": " + n.iface + " " + n.address + "/" + std::to_string(n.prefix_length) +
         ", cores " + core_list_text(n.cores) + "; a shell in it: nsenter --net=" + n.netns_path + "\n";
  }
  return s;
}

std::string describe_goodput(const EmulatedNetwork& net, int from, int to, const Goodput& g) {
  return "goodput node " + std::to_string(from) + " -> node " + std::to_string(to) + ": " + rate_text(g.bit_per_s) +
         " (" + fmt("%.1f", 100 * g.bit_per_s / net.link().rate_bit_per_s) + "% of " +
         rate_text(net.link().rate_bit_per_s) + "), " + fmt("%.0f", g.bytes / 1e6) + " MB over " +
         fmt("%.2f", g.seconds) + " s";
}

std::string describe_round_trip(int a, int b, const RoundTrip& r, int message_bytes) {
  return "round trip node " + std::to_string(a) + " <-> node " + std::to_string(b) + ": median " +
         delay_text(r.median_s) + " (min " + delay_text(r.min_s) + ", max " + delay_text(r.max_s) + "; " +
         std::to_string(r.count) + " round trips of " + std::to_string(message_bytes) + " byte" +
         (message_bytes == 1 ? "" : "s") + ")";
}

}  // namespace ddp::netemu
