// What an emulated link delivers, measured with plain TCP sockets between
// two nodes (made inside their namespaces by this process: no tool needed).
#pragma once
#include "netemu/network.h"

namespace ddp::netemu {

struct Goodput {
  double bit_per_s = 0;  // application bytes received per second, x 8
  double bytes = 0;      // counted (after the warm-up)
  double seconds = 0;    // over which they were counted
};

// One TCP stream from node `from` to node `to` for `seconds` (bounded: at
// most seconds + 5 s in all); the first fifth is slow start and is not
// counted. Headers are not counted either: the shaper counts whole
// Ethernet frames (1,514 bytes at the veth's MTU of 1,500) of which TCP
// carries 1,448 bytes of data, so the goodput is at most 95.6% of the link
// rate. Throws ddp::UserError when the nodes cannot reach each other.
Goodput measure_goodput(const EmulatedNetwork& net, int from, int to, double seconds = 2.0);

struct RoundTrip {
  double median_s = 0;  // of `count` round trips
  double min_s = 0;
  double max_s = 0;
  int count = 0;
};

// `count` round trips of a `message_bytes` message over one TCP connection
// (TCP_NODELAY; 10 more first, not counted): node a sends, node b echoes.
// The round trip includes both ends' wake-ups, as a message of an
// all-reduce does. Throws ddp::UserError when the nodes cannot reach each
// other or a round trip takes over 5 s.
RoundTrip measure_round_trip(const EmulatedNetwork& net, int a, int b, int count = 200, int message_bytes = 1);

}  // namespace ddp::netemu
