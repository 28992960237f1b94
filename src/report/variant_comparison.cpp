// run_experiments --variant: which variant a configuration is, and the
// variants side by side (declared in report/metrics.h).
#include <algorithm>
#include <cmath>

#include "report/metrics.h"
#include "report/metrics_json.h"

namespace ddp::report {

using nlohmann::json;
using namespace metrics_json;

std::string variant_of(const json& c) { return str(c, "variant", ""); }

std::vector<std::string> variants(const json& metrics) {
  std::vector<std::string> out;
  for (const auto& c : metrics.value("configurations", json::array()))
    if (!is_serial(c))
      if (const std::string v = variant_of(c); std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  return out;
}

bool names_variants(const json& metrics) {
  const auto vs = variants(metrics);
  return !vs.empty() && vs != std::vector<std::string>{""};
}

bool in_first_variant(const json& configurations, const json& c) {
  if (is_serial(c)) return true;
  for (const auto& x : configurations)
    if (!is_serial(x)) return variant_of(x) == variant_of(c);
  return true;
}

namespace {

double bytes_per_step(const json& c) {
  return c.contains("allreduce") ? num(c["allreduce"], "bytes_per_step") : NAN;
}

// The run of the first variant that `c` is compared with: the same N, backend and precision.
const json* reference_of(const json& cs, const json& c) {
  for (const auto& x : cs)
    if (!is_serial(x) && in_first_variant(cs, x) && x.value("processes", 0) == c.value("processes", 0) &&
        backend_of(x) == backend_of(c) && precision_of(x) == precision_of(c))
      return &x;
  return nullptr;
}

std::string variant_line(const json& m, const json& c) {
  const json& cs = m["configurations"];
  const json flags = m.value("experiment", json::object()).value("config", json::object()).value("variants", json());
  const std::string v = variant_of(c);
  std::string line = "**" + c.value("label", v) + "**";
  if (flags.is_object() && flags.contains(v) && flags[v].is_string())
    line += flags[v].get<std::string>().empty() ? " (no extra flags)" : " (`" + flags[v].get<std::string>() + "`)";
  const std::string status = c.value("status", "failed");
  if (status != "ok" && status != "partial") return line + ": " + status + ".";
  line += ": speedup " + format_value("%.2fx", med(c, "speedup")) + ", test accuracy " +
          format_value("%.2f%%", 100 * med(c, "final_test_accuracy"));
  const double b = bytes_per_step(c);
  if (!std::isfinite(b)) return line + ", bytes per step not recorded.";
  line += ", " + format_value("%.3f MB", 1e-6 * b) + " all-reduced per step and rank";
  const json* ref = reference_of(cs, c);
  if (ref == &c) return line + " (the reference of the bytes saved).";
  const double rb = ref ? bytes_per_step(*ref) : NAN;
  if (!std::isfinite(rb) || !(rb > 0)) return line + ".";
  const double saved = 1 - b / rb;
  if (saved < 0) return line + ", " + format_value("%.1f%%", -100 * saved) + " more bytes than " + variant_of(*ref) + ".";
  return line + ", " + format_value("%.1f%%", 100 * saved) + " fewer bytes than " + variant_of(*ref) + " (" +
         format_value("%.1fx", rb / b) + " fewer).";
}

}  // namespace

std::vector<std::string> variant_comparison_lines(const json& metrics) {
  std::vector<std::string> out;
  if (!names_variants(metrics)) return out;
  for (const auto& c : metrics["configurations"])
    if (!is_serial(c)) out.push_back(variant_line(metrics, c));
  return out;
}

std::string variant_comparison_markdown(const json& metrics) {
  const auto lines = variant_comparison_lines(metrics);
  if (lines.empty()) return "";
  std::string r = "**Variants compared.** Each parallel run once per `--variant` (its train_parallel flags), against "
                  "the serial run: speedup, final test accuracy, and the bytes each rank handed to the communicator per "
                  "optimizer step (counted, `allreduce.bytes_per_step`), saved against the first variant's run of the "
                  "same process count, backend and precision.\n\n";
  for (const auto& l : lines) r += "- " + l + "\n";
  return r + "\n";
}

}  // namespace ddp::report
