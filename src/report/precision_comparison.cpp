// The precisions of an experiment: which ran, each run's baseline, and each
// run compared across fp32 and bf16, as data and as report.md's text
// (declared in report/metrics.h).
#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "report/metrics.h"
#include "report/metrics_json.h"

namespace ddp::report {

using nlohmann::json;
using namespace metrics_json;

std::string precision_of(const json& c) { return str(c, "precision", "fp32"); }

std::vector<std::string> precisions(const json& metrics) {
  std::vector<std::string> out;
  for (const auto& c : metrics.value("configurations", json::array()))
    if (const std::string p = precision_of(c); std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  return out;
}

bool names_precisions(const json& metrics) {
  const auto ps = precisions(metrics);
  return !ps.empty() && ps != std::vector<std::string>{"fp32"};
}

const Configuration* baseline_of(const std::vector<Configuration>& configs, const Configuration& c) {
  const bool serial = c.is_serial();
  const std::string want = serial ? "fp32" : c.precision;
  for (const auto& x : configs)
    if (x.is_serial() && x.precision == want) return &x;
  return serial ? &c : nullptr;
}

namespace {

json precision_numbers(const json& c) {
  const std::string status = c.value("status", "");
  json p = {{"status", status == "ok" || status == "partial" ? "ok" : status}};
  for (const char* key : {"total_time_s", "speedup", "throughput_samples_per_s", "final_test_accuracy"})
    p[key] = finite_or_null(med(c, key));
  return p;
}

// The label without its precision: "2 processes, bf16" -> "2 processes".
std::string base_label(const json& c) {
  std::string label = c.value("label", c.value("name", std::string("?")));
  const std::string tail = ", " + precision_of(c);
  if (label.size() > tail.size() && label.compare(label.size() - tail.size(), tail.size(), tail) == 0)
    label.resize(label.size() - tail.size());
  return label;
}

json compare(const json& fp32, const json& bf16) {
  json e = {{"label", base_label(fp32)},
            {"processes", fp32.value("processes", 1)},
            {"backend", backend_of(fp32).empty() ? json(nullptr) : json(backend_of(fp32))},
            {"precisions", {{"fp32", precision_numbers(fp32)}, {"bf16", precision_numbers(bf16)}}},
            {"time_ratio", nullptr},
            {"throughput_ratio", nullptr},
            {"accuracy_difference", nullptr}};
  const json& a = e["precisions"]["fp32"];
  const json& b = e["precisions"]["bf16"];
  if (a["status"] != "ok" || b["status"] != "ok") return e;
  e["time_ratio"] = finite_or_null(num(a, "total_time_s") / num(b, "total_time_s"));
  e["throughput_ratio"] = finite_or_null(num(b, "throughput_samples_per_s") / num(a, "throughput_samples_per_s"));
  e["accuracy_difference"] = finite_or_null(num(b, "final_test_accuracy") - num(a, "final_test_accuracy"));
  return e;
}

}  // namespace

json precision_comparison(const json& configurations) {
  // The same run in each precision: serial, or the same process count and backend.
  std::vector<std::pair<std::string, std::map<std::string, const json*>>> runs;
  for (const auto& c : configurations) {
    if (!in_first_variant(configurations, c)) continue;  // the other variants change more than the precision
    const std::string key = is_serial(c) ? "serial" : std::to_string(c.value("processes", 1)) + "|" + backend_of(c);
    auto it = std::find_if(runs.begin(), runs.end(), [&](const auto& r) { return r.first == key; });
    if (it == runs.end()) it = runs.insert(runs.end(), {key, {}});
    it->second[precision_of(c)] = &c;
  }
  json out = json::array();
  for (const auto& [key, by] : runs)
    if (by.count("fp32") && by.count("bf16")) out.push_back(compare(*by.at("fp32"), *by.at("bf16")));
  return out;
}

namespace {

// Differences below this share of the time are within a single run's noise.
constexpr double kClearDifference = 0.03;

std::string compare_sentence(const json& e, bool with_backend) {
  std::string head = e.value("label", std::string("?"));
  if (with_backend && e["backend"].is_string()) head += ", " + e["backend"].get<std::string>();
  head += ": ";
  const json& a = e["precisions"]["fp32"];
  const json& b = e["precisions"]["bf16"];
  if (!e["time_ratio"].is_number()) {
    std::string failed;
    for (const auto& [p, n] : e["precisions"].items())
      if (n.value("status", "") != "ok") failed += (failed.empty() ? "" : "; ") + p + " " + n.value("status", "failed");
    return head + "no comparison (" + failed + ").";
  }
  const double ratio = num(e, "time_ratio");
  std::string out = head + "bf16 took " + format_value("%.2f s", num(b, "total_time_s")) + ", fp32 " +
                    format_value("%.2f s", num(a, "total_time_s")) + ": ";
  if (std::abs(ratio - 1) < kClearDifference)
    out += "within " + format_value("%.0f%%", 100 * kClearDifference) + " of each other";
  else if (ratio > 1)
    out += "bf16 was " + format_value("%.2fx", ratio) + " as fast";
  else
    out += "bf16 was slower (" + format_value("%.2fx", 1 / ratio) + " the time of fp32)";
  out += "; throughput " + format_value("%.0f", num(b, "throughput_samples_per_s")) + " vs " +
         format_value("%.0f", num(a, "throughput_samples_per_s")) + " samples/s (" +
         format_value("%.2fx", num(e, "throughput_ratio")) + "); test accuracy " +
         format_value("%.2f%%", 100 * num(b, "final_test_accuracy")) + " (bf16) vs " +
         format_value("%.2f%%", 100 * num(a, "final_test_accuracy")) + " (fp32), " +
         format_value("%+.2f", 100 * num(e, "accuracy_difference")) + " points.";
  return out;
}

}  // namespace

std::vector<std::string> precision_comparison_sentences(const json& comparison) {
  std::vector<std::string> out;
  if (!comparison.is_array()) return out;
  bool several_backends = false;
  for (const auto& e : comparison)
    several_backends = several_backends || (e["backend"].is_string() && e["backend"] != "gloo");
  for (const auto& e : comparison) out.push_back(compare_sentence(e, several_backends));
  return out;
}

std::string precision_description(const json& m) {
  const auto ps = precisions(m);
  const std::string bf16 = "bf16 mixed precision (convolutions and fc1 in bf16 with f32 accumulation; master weights, "
                           "gradients, momentum, the all-reduce and the loss in fp32)";
  if (ps.size() > 1)
    return "fp32 and " + bf16 + ", side by side: each parallel run is measured against the serial run of its own "
           "precision, the bf16 serial run against the fp32 one";
  if (!ps.empty() && ps[0] == "bf16") return bf16;
  return ps.empty() ? "fp32" : ps[0];
}

std::string precision_comparison_markdown(const json& m) {
  if (!m.contains("precision_comparison") || m["precision_comparison"].empty()) return "";
  std::string r = "**Precisions compared.** The same training in fp32 and in bf16 mixed precision: bf16 runs the "
                  "convolutions and fc1 at about twice fp32's arithmetic rate on a CPU with AVX512_BF16 or AMX, and "
                  "moves half the bytes through the memory-bound layers; its rounding (8 bits of mantissa) shows in "
                  "the accuracy, if anywhere.\n\n";
  for (const auto& sentence : precision_comparison_sentences(m["precision_comparison"])) r += "- " + sentence + "\n";
  return r + "\n";
}

}  // namespace ddp::report
