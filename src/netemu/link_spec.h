// What an emulated link is asked to be: its rate and, where the kernel can
// add it, a delay. Written as on the command line: RATE[,DELAY], e.g.
// "1gbit", "10gbit", "500mbit", "1gbit,100us".
#pragma once
#include <string>

namespace ddp::netemu {

struct LinkSpec {
  double rate_bit_per_s = 0;  // > 0
  // One-way delay added between any two nodes (0: none; the link's latency
  // is then the veth path's own). Needs the kernel's netem qdisc.
  double delay_s = 0;
  std::string text;  // as given, for messages and results
};

// The rates an emulated link may have, in bit/s.
inline constexpr double kMinRateBitPerS = 1e6, kMaxRateBitPerS = 100e9;

// Parses RATE[,DELAY]. RATE: a positive number with a unit of bit/s as tc
// writes it (bit, kbit, mbit, gbit, tbit; decimal prefixes: 1gbit = 1e9
// bit/s), from kMinRateBitPerS to kMaxRateBitPerS. DELAY: a number with us, ms or s. Throws ddp::UserError naming
// the bad part and showing valid forms.
LinkSpec parse_link_spec(const std::string& text);

// "1 Gbit/s", "10 Gbit/s", "500 Mbit/s", "1.5 Gbit/s": for people.
std::string rate_text(double bit_per_s);
// "100 us", "1.5 ms": for people.
std::string delay_text(double seconds);

}  // namespace ddp::netemu
