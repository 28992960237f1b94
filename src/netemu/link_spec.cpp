#include "netemu/link_spec.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "common/error.h"

namespace ddp::netemu {

namespace {

constexpr const char* kForms = "write RATE[,DELAY] with RATE in bit/s as tc writes it and DELAY in us, ms or s, "
                               "e.g. 1gbit, 10gbit, 500mbit, 1gbit,100us";

// Splits "1.5gbit" into 1.5 and "gbit"; false when there is no number.
bool split_number(const std::string& s, double& value, std::string& unit) {
  if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '.')) return false;
  char* end = nullptr;
  value = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !std::isfinite(value)) return false;
  unit = std::string(end);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return true;
}

double scaled(const std::string& part, const std::string& what,
              const std::vector<std::pair<std::string, double>>& units) {
  double value = 0;
  std::string unit;
  if (split_number(part, value, unit))
    for (const auto& [name, factor] : units)
      if (unit == name) {
        if (value <= 0) throw UserError("the " + what + " in '" + part + "' must be positive", kForms);
        return value * factor;
      }
  if (what == "rate" && (unit.find("bps") != std::string::npos || unit == "b" || unit == "k" || unit == "m" ||
                         unit == "g"))
    throw UserError("'" + part + "' is not a rate in bit/s (tc reads 'bps' as bytes per second)",
                    "give the unit as bit, kbit, mbit or gbit, e.g. 1gbit");
  throw UserError("'" + part + "' is not a " + what, kForms);
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

LinkSpec parse_link_spec(const std::string& text) {
  LinkSpec spec;
  spec.text = text;
  const size_t comma = text.find(',');
  const std::string rate = text.substr(0, comma);
  if (rate.empty()) throw UserError("no link rate given in '" + text + "'", kForms);
  spec.rate_bit_per_s =
      scaled(rate, "rate", {{"bit", 1}, {"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"tbit", 1e12}});
  // Below 1 Mbit/s a gradient takes minutes and tc's queue limits round to
  // nothing; above 100 Gbit/s tbf's burst overflows and no core can copy as
  // fast (on this 2-core machine even 10 Gbit/s is set by the CPU).
  if (spec.rate_bit_per_s < kMinRateBitPerS || spec.rate_bit_per_s > kMaxRateBitPerS)
    throw UserError("the rate in '" + text + "' is outside what an emulated link can be (1 Mbit/s to 100 Gbit/s)",
                    "give a rate from 1mbit to 100gbit, e.g. 1gbit or 10gbit");
  if (comma != std::string::npos) {
    const std::string delay = text.substr(comma + 1);
    if (delay.find(',') != std::string::npos) throw UserError("'" + text + "' has more than two parts", kForms);
    spec.delay_s = scaled(delay, "delay", {{"us", 1e-6}, {"ms", 1e-3}, {"s", 1}});
  }
  return spec;
}

std::string rate_text(double bit_per_s) {
  if (bit_per_s >= 1e9) return number(bit_per_s / 1e9) + " Gbit/s";
  if (bit_per_s >= 1e6) return number(bit_per_s / 1e6) + " Mbit/s";
  if (bit_per_s >= 1e3) return number(bit_per_s / 1e3) + " kbit/s";
  return number(bit_per_s) + " bit/s";
}

std::string delay_text(double seconds) {
  if (seconds >= 1) return number(seconds) + " s";
  if (seconds >= 1e-3) return number(seconds * 1e3) + " ms";
  return number(seconds * 1e6) + " us";
}

}  // namespace ddp::netemu
