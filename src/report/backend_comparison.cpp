// The backends of an experiment: their names, and each process count compared
// across them (declared in report/metrics.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "report/metrics.h"
#include "report/metrics_json.h"

namespace ddp::report {

using nlohmann::json;
using namespace metrics_json;

std::string backend_of(const json& c) {
  if (c.contains("backend") && c["backend"].is_string()) return c["backend"];
  return c.value("program", "") == "train_parallel" ? "gloo" : "";
}

std::vector<std::string> backends(const json& metrics) {
  std::vector<std::string> out;
  for (const auto& c : metrics.value("configurations", json::array()))
    if (const std::string b = backend_of(c); !b.empty() && std::find(out.begin(), out.end(), b) == out.end())
      out.push_back(b);
  return out;
}

bool names_backends(const json& metrics) {
  const auto bs = backends(metrics);
  return !bs.empty() && bs != std::vector<std::string>{"gloo"};
}

std::string run_label(const json& c, bool with_backend) {
  const std::string label = c.value("label", c.value("name", std::string("?")));
  const std::string b = backend_of(c);
  return with_backend && !b.empty() ? label + ", " + b : label;
}

std::string backend_name(const std::string& b) {
  if (b == "gloo") return "Gloo";
  if (b == "mpi") return "MPI";
  return b;
}

namespace {

json backend_numbers(const json& c) {
  const std::string status = c.value("status", "");
  json b = {{"status", status == "ok" || status == "partial" ? "ok" : status}};
  for (const char* key : {"total_time_s", "speedup", "efficiency", "throughput_samples_per_s", "final_test_accuracy",
                          "exposed_comm_fraction"})
    b[key] = finite_or_null(med(c, key));
  b["allreduce_busy_per_step_s"] = finite_or_null(num(c.value("allreduce", json::object()), "busy_per_step_s", NAN));
  return b;
}

// The backends of one process count, ranked by their median total time.
json compare_at(int processes, const std::vector<const json*>& entries) {
  json backends = json::object();
  std::vector<std::pair<double, std::string>> finished;
  for (const json* c : entries) {
    const json b = backend_numbers(*c);
    backends[backend_of(*c)] = b;
    const double t = num(b, "total_time_s", NAN);
    if (b["status"] == "ok" && std::isfinite(t)) finished.push_back({t, backend_of(*c)});
  }
  std::sort(finished.begin(), finished.end());
  json e = {{"processes", processes},
            {"backends", backends},
            {"fastest", nullptr},
            {"slowest", nullptr},
            {"time_ratio", nullptr}};
  if (finished.size() >= 2) {
    e["fastest"] = finished.front().second;
    e["slowest"] = finished.back().second;
    e["time_ratio"] = finite_or_null(finished.back().first / finished.front().first);
  }
  return e;
}

}  // namespace

json backend_comparison(const json& configurations) {
  // Backends are compared at the same process count and precision (with
  // --precision fp32 bf16, a bf16 run against an fp32 one says nothing of
  // the backends), in the first variant (the others change what is compared).
  std::map<std::pair<int, std::string>, std::vector<const json*>> groups;
  for (const auto& c : configurations)
    if (!backend_of(c).empty() && in_first_variant(configurations, c)) groups[{c.value("processes", 0), c.value("precision", "fp32")}].push_back(&c);
  json out = json::array();
  for (const auto& [key, entries] : groups)
    if (entries.size() >= 2) {
      json e = compare_at(key.first, entries);
      if (key.second != "fp32") e["precision"] = key.second;
      out.push_back(e);
    }
  return out;
}

namespace {

std::string processes_text(int p) { return std::to_string(p) + (p == 1 ? " process" : " processes"); }

// Backends of a comparison entry that did not finish: "MPI failed".
std::string failures(const json& e) {
  std::string out;
  for (const auto& [b, n] : e["backends"].items())
    if (n.value("status", "") != "ok")
      out += (out.empty() ? "" : "; ") + backend_name(b) + " " + n.value("status", "failed");
  return out;
}

// Differences below this share of the time are within a single run's noise.
constexpr double kClearDifference = 0.03;

std::string compare_sentence(const json& e) {
  const std::string head = processes_text(e.value("processes", 0)) +
                           (e.contains("precision") ? ", " + e["precision"].get<std::string>() : "") + ": ";
  if (!e["fastest"].is_string()) return head + "no comparison (" + failures(e) + ").";
  const std::string fast = e["fastest"], slow = e["slowest"];
  const json& f = e["backends"][fast];
  const json& s = e["backends"][slow];
  const double ratio = num(e, "time_ratio", NAN);
  std::string out = head + backend_name(fast) + " took " + format_value("%.2f s", num(f, "total_time_s", NAN)) + ", " +
                    backend_name(slow) + " " + format_value("%.2f s", num(s, "total_time_s", NAN)) + ": ";
  if (ratio - 1 < kClearDifference)
    out += "within " + format_value("%.0f%%", 100 * kClearDifference) + " of each other, no clear difference at this size";
  else
    out += backend_name(fast) + " was " + format_value("%.2fx", ratio) + " as fast (" + format_value("%.0f%%", 100 * (1 - 1 / ratio)) +
           " less time)";
  auto both = [&](const char* format, double scale, const char* key) {
    return format_value(format, scale * num(f, key, NAN)) + " (" + backend_name(fast) + ") vs " +
           format_value(format, scale * num(s, key, NAN)) + " (" + backend_name(slow) + ")";
  };
  out += "; all-reduce per step " + both("%.2f ms", 1e3, "allreduce_busy_per_step_s") + ", exposed communication " +
         both("%.1f%%", 100, "exposed_comm_fraction") + ".";
  const std::string failed = failures(e);
  return failed.empty() ? out : out + " (" + failed + ".)";
}

}  // namespace

std::vector<std::string> backend_comparison_sentences(const json& comparison) {
  std::vector<std::string> out;
  if (comparison.is_array())
    for (const auto& e : comparison) out.push_back(compare_sentence(e));
  return out;
}

}  // namespace ddp::report
