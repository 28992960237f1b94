#include "experiments/validation.h"

#include <cmath>
#include <string>
#include <utility>

#include "report/scaling_model.h"

namespace ddp::experiments {

using nlohmann::json;

namespace {

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

double number(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

double rel_error(double predicted, double measured) {
  return measured > 0 && std::isfinite(predicted) ? std::fabs(predicted - measured) / measured : NAN;
}

json validation_of(const json& cfg, const report::ModelParams& mp, const report::CommCost& c, int cores,
                   int threads) {
  const int p = cfg.value("processes", 1);
  const report::Prediction q = report::predict(mp, p, c, report::shared_cores_slowdown(p, threads, cores));
  const json& ar = cfg.value("allreduce", json::object());
  const double meas_sp = cfg.contains("speedup") ? number(cfg["speedup"], "median") : NAN;
  // The comm thread's busy time per step: from the first bucket's hand-off to
  // the last bucket's sum, including any wait for the later rank to reach
  // each bucket (so an upper bound of the wire's time).
  const double meas_ar = number(ar, "busy_per_step_s");
  const double meas_exp = number(ar, "exposed_per_step_s");
  return {{"predicted_speedup", q.speedup},
          {"measured_speedup", finite_or_null(meas_sp)},
          {"speedup_error", finite_or_null(rel_error(q.speedup, meas_sp))},
          {"predicted_allreduce_ms", 1e3 * q.allreduce_step_s},
          {"measured_allreduce_ms", finite_or_null(1e3 * meas_ar)},
          {"allreduce_error", finite_or_null(rel_error(q.allreduce_step_s, meas_ar))},
          {"predicted_exposed_ms", 1e3 * q.exposed_step_s},
          {"measured_exposed_ms", finite_or_null(1e3 * meas_exp)},
          {"exposed_abs_diff_ms", finite_or_null(1e3 * std::fabs(q.exposed_step_s - meas_exp))},
          {"predicted_compute_ms", 1e3 * q.compute_step_s},
          {"model",
           {{"alpha_s", c.alpha_s},
            {"beta_bytes_per_s", c.beta_Bps},
            {"burst_bytes", c.burst_bytes},
            {"cpu_s_per_allreduce", c.cpu_s},
            {"cpu_s_per_byte", c.cpu_s_per_byte},
            {"cpu_shared_with_compute", c.cpu_shared}}}};
}

// performance_metrics.json's "network": what was asked for and what was measured.
json network_block(const json& n) {
  json out = {{"spec", n.value("spec", "")},
              {"rate_bit_per_s", finite_or_null(number(n, "rate_bit_per_s"))},
              {"delay_s", finite_or_null(number(n, "delay_s"))},
              {"status", n.value("status", "failed")},
              {"alpha_s", finite_or_null(number(n, "alpha_s"))},
              {"beta_bytes_per_s", finite_or_null(number(n, "beta_bytes_per_s"))},
              {"bucket_bytes", finite_or_null(number(n, "bucket_bytes"))}};
  if (n.contains("round_trip_s")) out["round_trip_s"] = n["round_trip_s"];
  if (n.contains("error")) out["error"] = n["error"];
  out["measured_by"] = "see scaling_model.calibration.allreduce_benchmark.network";
  return out;
}

}  // namespace

report::CommCost comm_cost(const json& b, int p, int cores, int threads, bool network) {
  report::CommCost c;
  c.alpha_s = number(b, "alpha_s");
  c.beta_Bps = number(b, "beta_bytes_per_s");
  if (network) c.burst_bytes = number(b, "bucket_bytes");
  if (!std::isfinite(c.burst_bytes)) c.burst_bytes = 0;
  std::vector<std::pair<double, double>> cpu;
  for (const auto& s : b.value("samples", json::array()))
    if (s.contains("cpu_seconds") && s["cpu_seconds"].is_number())
      cpu.push_back({s["bytes"].get<double>(), s["cpu_seconds"].get<double>()});
  try {
    if (cpu.size() >= 2) std::tie(c.cpu_s, c.cpu_s_per_byte) = report::fit_line(cpu);
  } catch (const std::exception&) {
  }
  c.cpu_s = std::max(0.0, c.cpu_s);
  c.cpu_s_per_byte = std::max(0.0, c.cpu_s_per_byte);
  // Cores of one rank: a node's share with --network, else the machine's share.
  const double rank_cores = std::max(1.0, std::floor(static_cast<double>(cores) / p));
  c.cpu_shared = threads >= rank_cores;
  return c;
}

void add_model_validation(json& metrics, const std::vector<report::Configuration>& configs, const json& bench,
                          int cores, int threads) {
  (void)configs;
  const bool network = bench.contains("network");
  if (network) metrics["network"] = network_block(bench["network"]);
  const json& sm = metrics.value("scaling_model", json::object());
  if (sm.value("status", "") != "ok") return;
  const json& b = network ? bench["network"] : bench;
  if (b.value("status", "") != "ok") return;
  const report::ModelParams mp = report::model_params_from_json(sm["params"]);
  const std::string backend = sm.value("measured_backend", "gloo");
  const std::string precision = sm.value("measured_precision", "fp32");
  for (auto& cfg : metrics["configurations"]) {
    if (cfg.value("processes", 1) < 2 || report::backend_of(cfg) != backend || report::precision_of(cfg) != precision ||
        !report::in_first_variant(metrics["configurations"], cfg) ||
        !cfg.contains("allreduce"))
      continue;
    const report::CommCost c = comm_cost(b, cfg.value("processes", 1), cores, threads, network);
    cfg["model_validation"] = validation_of(cfg, mp, c, cores, threads);
  }
}

}  // namespace ddp::experiments
