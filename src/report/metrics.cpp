#include "report/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "report/metrics_json.h"

namespace ddp::report {

using nlohmann::json;
using results::RunResult;
using namespace metrics_json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

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

json to_json(const Summary& s) {
  return {{"median", finite_or_null(s.median)}, {"min", finite_or_null(s.min)}, {"max", finite_or_null(s.max)}, {"n", s.n}};
}

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

bool Configuration::is_serial() const { return name == "serial" || name.rfind("serial_", 0) == 0; }

bool is_serial(const json& c) {
  const std::string name = c.value("name", "");
  return name == "serial" || name.rfind("serial_", 0) == 0;
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
             {"background_load_cores", finite_or_null(r.background_cores)}};
  if (r.ok) jr["total_time_s"] = r.results.total_time_s;
  else jr["error"] = r.error;
  if (!r.trace_file.empty()) jr["trace_file"] = r.trace_file;
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
                      {"hidden_fraction", s.allreduce_busy > 0 ? finite_or_null(1 - s.allreduce_wait / s.allreduce_busy)
                                                               : json(nullptr)},
                      // What communication cost the cores: the gradient thread's CPU, and the time
                      // the compute thread was ready but preempted (both per rank).
                      {"cpu_per_step_s", finite_or_null(s.comm_cpu / steps)},
                      {"compute_preempted_per_step_s", finite_or_null(s.compute_preempted / steps)},
                      // Where it ran (what --overlap chose): the report's prose depends on it.
                      {"overlap", r.overlap}};
    // What each rank handed to the communicator (counted by train_parallel; absent before it was).
    if (!c.is_serial() && std::isfinite(r.bytes_per_step)) {
      m["allreduce"]["bytes_per_step"] = r.bytes_per_step;
      m["allreduce"]["bytes_per_epoch"] = finite_or_null(r.bytes_per_epoch);
    }
  }
}

}  // namespace

json configuration_metrics(const Configuration& c, const Configuration* serial) {
  json runs = json::array();
  std::vector<double> total, train, thr, acc, exposed, background;
  std::string trace_file;  // the run that recorded a trace (experiments: the first)
  for (const auto& r : c.runs) {
    background.push_back(r.background_cores);
    runs.push_back(run_json(r));
    if (trace_file.empty()) trace_file = r.trace_file;
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
  if (!trace_file.empty()) m["trace_file"] = trace_file;
  m["precision"] = c.precision;
  if (!c.variant.empty()) m["variant"] = c.variant;
  const Summary t = summarize(total);
  m["total_time_s"] = to_json(t);
  m["train_time_s"] = to_json(summarize(train));
  m["throughput_samples_per_s"] = to_json(summarize(thr));
  m["final_test_accuracy"] = to_json(summarize(acc));
  m["exposed_comm_fraction"] = to_json(summarize(exposed));
  m["background_load_cores"] = to_json(summarize(background));
  const Summary sp = speedup_of(c, serial, t);
  m["speedup"] = to_json(sp);
  // Parallel efficiency: a serial run is its own precision's baseline (a bf16
  // serial run's speedup over the fp32 one is what bf16 buys, not parallelism).
  m["efficiency"] = to_json(efficiency_summary(c.is_serial() ? speedup_of(c, &c, t) : sp, c.processes));
  if (c.representative_results()) add_representative(m, c);
  else m["oversubscribed"] = nullptr;
  return m;
}

}  // namespace ddp::report
