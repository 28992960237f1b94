#include "report/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "results/json_reader.h"

namespace ddp::report {

using nlohmann::json;

using results::RunResult;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// A member of performance_metrics.json (written by this program, read back by
// --replot and the tables); missing or null: the fallback.
double get(const json& j, const char* key, double fallback) { return results::number_or(j, key, fallback); }
bool flag(const json& j, const char* key) { return results::bool_or(j, key, false); }
std::string fmt(const char* f, double v) { return format_value(f, v); }

double med(const json& summary) { return get(summary, "median", kNaN); }

}  // namespace

Summary summarize(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  Summary s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) {
    s.median = s.min = s.max = kNaN;
    return s;
  }
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.min = v.front();
  s.max = v.back();
  return s;
}

json to_json(const Summary& s) { return {{"median", num(s.median)}, {"min", num(s.min)}, {"max", num(s.max)}, {"n", s.n}}; }

double speedup(double t_serial, double t_parallel) {
  return t_serial > 0 && t_parallel > 0 ? t_serial / t_parallel : kNaN;
}

double efficiency(double s, int processes) { return processes > 0 ? s / processes : kNaN; }

Summary speedup_summary(const Summary& ts, const Summary& tp) {
  Summary s;
  if (ts.n == 0 || tp.n == 0) return summarize({});
  s.n = tp.n;
  s.median = speedup(ts.median, tp.median);
  s.min = speedup(ts.min, tp.max);
  s.max = speedup(ts.max, tp.min);
  return s;
}

Summary efficiency_summary(const Summary& sp, int processes) {
  Summary e = sp;
  e.median = efficiency(sp.median, processes);
  e.min = efficiency(sp.min, processes);
  e.max = efficiency(sp.max, processes);
  return e;
}

PhaseSums phase_sums(const RunResult& r) {
  PhaseSums s;
  for (const auto& e : r.epochs) {
    s.data += e.phases.data;
    s.forward += e.phases.forward;
    s.backward += e.phases.backward;
    s.allreduce_wait += e.phases.allreduce_wait;
    s.optimizer += e.phases.optimizer;
    s.other += e.phases.other;
    s.eval += e.eval_time_s;
    s.train += e.train_time_s;
    s.allreduce_busy += e.allreduce_busy_s;
    s.comm_cpu += e.comm_cpu_s;
    s.compute_preempted += e.compute_preempted_s;
    ++s.epochs;
  }
  return s;
}

double exposed_comm_fraction(const RunResult& r) {
  const PhaseSums s = phase_sums(r);
  return r.train_time_s > 0 ? s.allreduce_wait / r.train_time_s : kNaN;
}

bool Configuration::any_ok() const {
  return std::any_of(runs.begin(), runs.end(), [](const RunRecord& r) { return r.ok; });
}

int Configuration::representative() const {
  std::vector<std::pair<double, int>> ok;
  for (size_t i = 0; i < runs.size(); ++i)
    if (runs[i].ok) ok.push_back({runs[i].results.total_time_s, static_cast<int>(i)});
  if (ok.empty()) return -1;
  std::sort(ok.begin(), ok.end());
  return ok[(ok.size() - 1) / 2].second;
}

const RunResult* Configuration::representative_results() const {
  const int i = representative();
  return i < 0 ? nullptr : &runs[i].results;
}

namespace {

// One entry of a configuration's "runs".
json run_json(const RunRecord& r) {
  json jr = {{"repeat", r.repeat},
             {"status", r.ok ? "ok" : "failed"},
             {"exit_status", r.exit_status},
             {"results_file", r.ok ? json(r.results_file) : json(nullptr)},
             {"log_file", r.log_file},
             {"wall_s", r.wall_s},
             {"background_load_cores", num(r.background_cores)}};
  if (r.ok) jr["total_time_s"] = r.results.total_time_s;
  else jr["error"] = r.error;
  return jr;
}

// The speedup summary of `c` (whose total times summarise as `t`) against the
// serial baseline; 1 for the baseline itself.
Summary speedup_of(const Configuration& c, const Configuration* serial, const Summary& t) {
  if (serial == &c && t.n) {
    Summary sp = summarize({1.0});  // the baseline itself (its noise shows in its time range)
    sp.n = t.n;
    return sp;
  }
  if (!serial || !serial->any_ok() || !t.n) return summarize({});
  std::vector<double> ts;
  for (const auto& r : serial->runs)
    if (r.ok) ts.push_back(r.results.total_time_s);
  return speedup_summary(summarize(ts), t);
}

// What the representative run of a configuration says about how it ran and
// where its time went, added to `m`.
void add_representative(json& m, const Configuration& c) {
  const RunResult& r = *c.representative_results();
  m["representative_repeat"] = c.runs[c.representative()].repeat;
  m["oversubscribed"] = r.oversubscribed;
  m["threads_per_process"] = r.threads_per_process;
  m["world_size"] = r.world_size;
  m["batch_per_process"] = r.config.batch_size;
  m["global_batch"] = r.config.batch_size * r.world_size;
  m["steps_per_epoch"] = r.steps_per_epoch;
  m["samples_per_epoch"] = r.samples_per_epoch;
  const PhaseSums s = phase_sums(r);
  const double e = s.epochs > 0 ? s.epochs : 1;
  m["time_per_epoch_s"] = {{"forward", s.forward / e},
                           {"backward", s.backward / e},
                           {"allreduce_exposed", s.allreduce_wait / e},
                           {"optimizer", s.optimizer / e},
                           {"data", s.data / e},
                           {"other", s.other / e},
                           {"evaluation", s.eval / e},
                           {"train", s.train / e}};
  // Compute time per sample on one rank (data, forward, backward, optimizer): against the
  // serial run's, it shows what sharing the cores (with other ranks, or with the
  // communication thread) costs.
  const double per_rank = static_cast<double>(r.samples_per_epoch) / std::max(1, r.world_size);
  if (per_rank > 0)
    m["compute_per_sample_s"] = (s.data + s.forward + s.backward + s.optimizer) / (e * per_rank);
  const double steps = static_cast<double>(r.steps_per_epoch) * s.epochs;
  if (steps > 0) {
    m["allreduce"] = {{"busy_per_step_s", s.allreduce_busy / steps},
                      {"exposed_per_step_s", s.allreduce_wait / steps},
                      {"hidden_fraction", s.allreduce_busy > 0 ? num(1 - s.allreduce_wait / s.allreduce_busy)
                                                               : json(nullptr)},
                      // What communication cost the cores: the gradient thread's CPU, and the time
                      // the compute thread was ready but preempted (both per rank).
                      {"cpu_per_step_s", num(s.comm_cpu / steps)},
                      {"compute_preempted_per_step_s", num(s.compute_preempted / steps)}};
  }
}

}  // namespace

json configuration_metrics(const Configuration& c, const Configuration* serial) {
  json runs = json::array();
  std::vector<double> total, train, thr, acc, exposed, background;
  for (const auto& r : c.runs) {
    background.push_back(r.background_cores);
    runs.push_back(run_json(r));
    if (!r.ok) continue;
    total.push_back(r.results.total_time_s);
    train.push_back(r.results.train_time_s);
    thr.push_back(r.results.throughput);
    acc.push_back(r.results.final_test_accuracy);
    exposed.push_back(exposed_comm_fraction(r.results));
  }
  const int ok = static_cast<int>(total.size());
  json m = {{"name", c.name},
            {"label", c.label},
            {"program", c.program},
            {"processes", c.processes},
            {"status", c.runs.empty() ? "not run" : ok == 0 ? "failed" : ok < static_cast<int>(c.runs.size()) ? "partial" : "ok"},
            {"results_file", ok ? json(c.results_file) : json(nullptr)},
            {"runs", runs}};
  if (!c.backend.empty()) m["backend"] = c.backend;
  const Summary t = summarize(total);
  m["total_time_s"] = to_json(t);
  m["train_time_s"] = to_json(summarize(train));
  m["throughput_samples_per_s"] = to_json(summarize(thr));
  m["final_test_accuracy"] = to_json(summarize(acc));
  m["exposed_comm_fraction"] = to_json(summarize(exposed));
  m["background_load_cores"] = to_json(summarize(background));
  const Summary sp = speedup_of(c, serial, t);
  m["speedup"] = to_json(sp);
  m["efficiency"] = to_json(efficiency_summary(sp, c.processes));
  if (c.representative_results()) add_representative(m, c);
  else m["oversubscribed"] = nullptr;
  return m;
}

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
    b[key] = num(med(c.value(key, json::object())));
  b["allreduce_busy_per_step_s"] = num(get(c.value("allreduce", json::object()), "busy_per_step_s", kNaN));
  return b;
}

// The backends of one process count, ranked by their median total time.
json compare_at(int processes, const std::vector<const json*>& entries) {
  json backends = json::object();
  std::vector<std::pair<double, std::string>> finished;
  for (const json* c : entries) {
    const json b = backend_numbers(*c);
    backends[backend_of(*c)] = b;
    const double t = get(b, "total_time_s", kNaN);
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
    e["time_ratio"] = num(finished.back().first / finished.front().first);
  }
  return e;
}

}  // namespace

json backend_comparison(const json& configurations) {
  std::map<int, std::vector<const json*>> by_processes;
  for (const auto& c : configurations)
    if (!backend_of(c).empty()) by_processes[c.value("processes", 0)].push_back(&c);
  json out = json::array();
  for (const auto& [processes, entries] : by_processes)
    if (entries.size() >= 2) out.push_back(compare_at(processes, entries));
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
  const std::string head = processes_text(e.value("processes", 0)) + ": ";
  if (!e["fastest"].is_string()) return head + "no comparison (" + failures(e) + ").";
  const std::string fast = e["fastest"], slow = e["slowest"];
  const json& f = e["backends"][fast];
  const json& s = e["backends"][slow];
  const double ratio = get(e, "time_ratio", kNaN);
  std::string out = head + backend_name(fast) + " took " + fmt("%.2f s", get(f, "total_time_s", kNaN)) + ", " +
                    backend_name(slow) + " " + fmt("%.2f s", get(s, "total_time_s", kNaN)) + ": ";
  if (ratio - 1 < kClearDifference)
    out += "within " + fmt("%.0f%%", 100 * kClearDifference) + " of each other, no clear difference at this size";
  else
    out += backend_name(fast) + " was " + fmt("%.2fx", ratio) + " as fast (" + fmt("%.0f%%", 100 * (1 - 1 / ratio)) +
           " less time)";
  auto both = [&](const char* format, double scale, const char* key) {
    return fmt(format, scale * get(f, key, kNaN)) + " (" + backend_name(fast) + ") vs " +
           fmt(format, scale * get(s, key, kNaN)) + " (" + backend_name(slow) + ")";
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
    r.time = fmt("%.1f", med(t));
    if (ranges && t.value("n", 0) > 1)
      r.time += " (" + fmt("%.1f", get(t, "min", 0)) + "-" + fmt("%.1f", get(t, "max", 0)) + ")";
    r.speedup = fmt("%.2fx", med(c["speedup"]));
    r.efficiency = fmt("%.0f%%", 100 * med(c["efficiency"]));
    r.throughput = fmt("%.0f", med(c["throughput_samples_per_s"]));
    r.accuracy = fmt("%.2f%%", 100 * med(c["final_test_accuracy"]));
    r.exposed = fmt("%.1f%%", 100 * med(c["exposed_comm_fraction"]));
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
