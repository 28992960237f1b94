// The members of performance_metrics.json as report/ reads them (internal to
// report/). The file reports what ran, so a failed configuration lacks its
// numbers: a missing or null member reads as the fallback (NaN, printed as
// "n/a"); a number that is not finite is written as null.
#pragma once
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "results/json_reader.h"

namespace ddp::report::metrics_json {

inline double num(const nlohmann::json& j, const char* key, double fallback = NAN) {
  return results::number_or(j, key, fallback);
}
inline bool flag(const nlohmann::json& j, const char* key) { return results::bool_or(j, key, false); }
inline std::string str(const nlohmann::json& j, const char* key, const std::string& fallback = "") {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return fallback;
  return j[key].get<std::string>();
}
// The median, min and max of the summary c[key] ({median, min, max, n}); NaN when missing.
inline double med(const nlohmann::json& c, const char* key) { return c.contains(key) ? num(c[key], "median") : NAN; }
inline double lo(const nlohmann::json& c, const char* key) { return c.contains(key) ? num(c[key], "min") : NAN; }
inline double hi(const nlohmann::json& c, const char* key) { return c.contains(key) ? num(c[key], "max") : NAN; }
inline nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace ddp::report::metrics_json
