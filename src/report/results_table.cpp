// The results table (text and Markdown) and the number formats of the report
// (declared in report/metrics.h).
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

namespace {

struct Row {
  std::string label, processes, backend, time, speedup, efficiency, throughput, accuracy, exposed;
};

std::vector<Row> table_rows(const json& metrics, bool ranges) {
  std::vector<Row> rows;
  if (!metrics.contains("configurations")) return rows;
  for (const auto& c : metrics["configurations"]) {
    Row r;
    r.label = c.value("label", "?");
    if (flag(c, "oversubscribed")) r.label += " *";
    r.processes = std::to_string(c.value("processes", 0));
    r.backend = backend_of(c).empty() ? "-" : backend_of(c);
    if (c.value("status", "") == "failed" || c.value("status", "") == "not run") {
      r.time = c.value("status", "") == "failed" ? "FAILED" : "not run";
      rows.push_back(r);
      continue;
    }
    const json& t = c["total_time_s"];
    r.time = format_value("%.1f", med(c, "total_time_s"));
    if (ranges && t.value("n", 0) > 1)
      r.time += " (" + format_value("%.1f", num(t, "min", 0)) + "-" + format_value("%.1f", num(t, "max", 0)) + ")";
    r.speedup = format_value("%.2fx", med(c, "speedup"));
    r.efficiency = format_value("%.0f%%", 100 * med(c, "efficiency"));
    r.throughput = format_value("%.0f", med(c, "throughput_samples_per_s"));
    r.accuracy = format_value("%.2f%%", 100 * med(c, "final_test_accuracy"));
    r.exposed = format_value("%.1f%%", 100 * med(c, "exposed_comm_fraction"));
    rows.push_back(r);
  }
  return rows;
}

std::vector<std::string> header(bool with_backend) {
  std::vector<std::string> h = {"run", "processes", "time (s)", "speedup", "efficiency",
                                "throughput (samples/s)", "test accuracy", "exposed comm"};
  if (with_backend) h.insert(h.begin() + 2, "backend");
  return h;
}

bool left_aligned(const std::string& column) { return column == "run" || column == "backend"; }

std::vector<std::string> cells(const Row& r, bool with_backend) {
  std::vector<std::string> c = {r.label,      r.processes, r.time,     r.speedup,
                                r.efficiency, r.throughput, r.accuracy, r.exposed};
  if (with_backend) c.insert(c.begin() + 2, r.backend);
  return c;
}

bool any_oversubscribed(const json& metrics) {
  if (!metrics.contains("configurations")) return false;
  for (const auto& c : metrics["configurations"])
    if (flag(c, "oversubscribed")) return true;
  return false;
}

}  // namespace

std::string results_table_text(const json& metrics) {
  const auto rows = table_rows(metrics, true);
  const bool with_backend = names_backends(metrics);
  const auto head = header(with_backend);
  std::vector<size_t> w(head.size());
  for (size_t i = 0; i < head.size(); ++i) w[i] = head[i].size();
  for (const auto& r : rows) {
    const auto c = cells(r, with_backend);
    for (size_t i = 0; i < c.size(); ++i) w[i] = std::max(w[i], c[i].size());
  }
  auto line = [&](const std::vector<std::string>& c) {
    std::string s;
    for (size_t i = 0; i < c.size(); ++i) {
      std::string cell = c[i];
      if (left_aligned(head[i])) cell.resize(w[i], ' ');
      else cell = std::string(w[i] - cell.size(), ' ') + cell;  // right-aligned
      s += (i ? "  " : "") + cell;
    }
    return s + "\n";
  };
  std::string out = line(head);
  size_t total = 0;
  for (size_t x : w) total += x + 2;
  out += std::string(total - 2, '-') + "\n";
  for (const auto& r : rows) out += line(cells(r, with_backend));
  if (any_oversubscribed(metrics)) {
    const int cores = metrics.contains("machine") ? metrics["machine"].value("cores", 0) : 0;
    out += "* oversubscribed: more compute threads than the " + std::to_string(cores) +
           " cores, so the processes take turns on them\n";
  }
  return out;
}

std::string results_table_markdown(const json& metrics) {
  const bool with_backend = names_backends(metrics);
  const auto head = header(with_backend);
  std::string out = "|";
  for (const auto& h : head) out += " " + h + " |";
  out += "\n|";
  for (const auto& h : head) out += left_aligned(h) ? " --- |" : " ---: |";
  out += "\n";
  for (const auto& r : table_rows(metrics, true)) {
    out += "|";
    for (const auto& c : cells(r, with_backend)) out += " " + c + " |";
    out += "\n";
  }
  if (any_oversubscribed(metrics)) {
    const int cores = metrics.contains("machine") ? metrics["machine"].value("cores", 0) : 0;
    out += "\n\\* oversubscribed: more compute threads than the machine's " + std::to_string(cores) +
           " cores, so the processes take turns on them.\n";
  }
  return out;
}

std::string format_value(const char* printf_format, double v) {
  if (!std::isfinite(v)) return "n/a";
  char buf[96];
  std::snprintf(buf, sizeof buf, printf_format, v);
  return buf;
}

std::string format_number(double v, int digits) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  const long t = std::lround(s);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

}  // namespace ddp::report
