// An emulated network and its measurements, in words for people.
#pragma once
#include <string>

#include "netemu/measure.h"
#include "netemu/network.h"

namespace ddp::netemu {

// One line for the network, then one per node: its address, interface,
// cores and the command that opens a shell inside it.
std::string describe_network(const EmulatedNetwork& net);

// "goodput node 0 -> node 1: 948 Mbit/s (94.8% of 1 Gbit/s), 190 MB over 1.6 s"
std::string describe_goodput(const EmulatedNetwork& net, int from, int to, const Goodput& g);
// "round trip node 0 <-> node 1: median 48 us (min 31 us, max 160 us; 200 round trips of 1 byte)"
std::string describe_round_trip(int a, int b, const RoundTrip& r, int message_bytes);

}  // namespace ddp::netemu
