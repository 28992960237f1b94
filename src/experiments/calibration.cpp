#include "experiments/calibration.h"
#include "experiments/validation.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "nn/cnn.h"
#include "report/scaling_model.h"
#include "results/json_reader.h"
#include "train/step.h"

namespace ddp::experiments {

using nlohmann::json;
using results::RunResult;

namespace {

std::vector<report::ParamBlock> param_layout() {
  std::vector<report::ParamBlock> out;
  for (const auto& p : nn::Cnn::param_specs()) out.push_back({p.name.substr(0, p.name.find('.')), p.offset, p.count});
  return out;
}

std::vector<std::string> layer_names() {
  std::vector<std::string> out;
  for (int l = 0; l < nn::kNumLayers; ++l) out.push_back(nn::layer_name(l));
  return out;
}

// The gradient buckets as the trainer cuts them (train::gradient_layout: one
// segment per layer, plus the stop flag after the parameters): [first, last)
// elements in all-reduce order.
std::vector<std::pair<size_t, size_t>> gradient_buckets(size_t bucket_bytes) {
  return train::gradient_layout(bucket_bytes).buckets;
}

const report::Configuration* serial_of(const std::vector<report::Configuration>& configs, const std::string& precision) {
  for (const auto& c : configs)
    if (c.is_serial() && c.precision == precision) return &c;
  return nullptr;
}

// The model's parameters from the serial run of `precision`, with the bucket
// layout of the parallel runs of `backend` in it (else the serial run's
// setting); `cal` gets the "from" and "buckets" of the calibration. Throws
// when it cannot calibrate.
report::ModelParams calibrate_from_runs(const std::vector<report::Configuration>& configs, const std::string& backend,
                                        const std::string& precision, json& cal) {
  const report::Configuration* serial = serial_of(configs, precision);
  const RunResult& sr = *serial->representative_results();
  const RunResult* bucket_src = &sr;
  for (const auto& c : configs)
    if (c.backend == backend && c.precision == precision && c.representative_results()) {
      bucket_src = c.representative_results();
      break;
    }
  const std::string& compression = bucket_src->config.grad_compression;
  const auto buckets = gradient_buckets(bucket_src->bucket_bytes);
  const report::ModelParams mp =
      report::calibrate(sr, layer_names(), param_layout(), buckets, compression == "bf16" ? 2 : 4);
  cal = {{"from", serial->runs[serial->representative()].results_file},
         {"buckets", {{"bucket_bytes", bucket_src->bucket_bytes},
                      {"count", buckets.size()},
                      {"count_reported_by_trainer", bucket_src->num_buckets},
                      {"compression", compression}}}};
  if (bucket_src->num_buckets != buckets.size())
    cal["buckets"]["warning"] = "the trainer reported a different number of buckets: the model's bucket layout may be off";
  return mp;
}

// The bandwidth as the training run saw it: all-reduce busy time per step of
// the smallest N > 1 of `backend` in `precision` (competing with compute for
// the cores). Records it in cal["training_allreduce"]; returns beta, or `beta`
// unchanged when no run tells.
double training_beta(const std::vector<report::Configuration>& configs, const std::string& backend,
                     const std::string& precision, const report::ModelParams& mp, double alpha, double beta,
                     json& cal) {
  for (const auto& c : configs) {
    const RunResult* r = c.representative_results();
    if (c.backend != backend || c.precision != precision || c.processes < 2 || !r) continue;
    const auto sums = report::phase_sums(*r);
    const double steps = static_cast<double>(r->steps_per_epoch) * sums.epochs;
    if (!(steps > 0) || !(sums.allreduce_busy > 0)) continue;
    const double busy = sums.allreduce_busy / steps;
    const double b = report::effective_beta(busy, mp.buckets, c.processes, alpha);
    cal["training_allreduce"] = {{"processes", c.processes},
                                 {"busy_per_step_s", busy},
                                 {"alpha_s", alpha},
                                 {"beta_effective_bytes_per_s", std::isfinite(b) ? json(b) : json(nullptr)}};
    return std::isfinite(b) ? b : beta;
  }
  return beta;
}

}  // namespace

json scaling_model(const std::vector<report::Configuration>& configs, const json& bench, const json& metrics,
                   int cores, int threads) {
  // Calibrated with, and compared to, the runs of one backend in one precision.
  const std::string backend = report::model_backend(report::backends(metrics));
  const std::string precision = report::model_precision(report::precisions(metrics));
  const report::Configuration* serial = serial_of(configs, precision);
  if (!serial || !serial->representative_results())
    return {{"status", "unavailable"}, {"reason", "the serial run, which calibrates it, failed"}};
  json cal;
  report::ModelParams mp;
  try {
    mp = calibrate_from_runs(configs, backend, precision, cal);
  } catch (const std::exception& e) {
    return {{"status", "unavailable"}, {"reason", std::string("cannot calibrate it from the serial run: ") + e.what()}};
  }
  cal["allreduce_benchmark"] = bench;

  // This machine: latency from the micro-benchmark, bandwidth as the training run saw it.
  // With --network, the parallel runs crossed the emulated network: its
  // benchmark calibrates the model of this machine's runs.
  const json* net = bench.contains("network") && bench["network"].value("status", "") == "ok" ? &bench["network"] : nullptr;
  const bool measured = bench.value("status", "") == "ok";
  const double alpha = net ? net->value("alpha_s", 0.0) : measured ? bench.value("alpha_s", 0.0) : 0.0;
  const double beta = net ? net->value("beta_bytes_per_s", 0.0)
                          : training_beta(configs, backend, precision, mp, alpha,
                                          measured ? bench.value("beta_bytes_per_s", 0.0) : 0.0, cal);
  int max_p = 8;
  std::vector<std::pair<int, double>> speedups;
  for (const auto& m : metrics["configurations"]) {
    if (report::backend_of(m) != backend || report::precision_of(m) != precision ||
        !report::in_first_variant(metrics["configurations"], m))
      continue;
    max_p = std::max(max_p, m.value("processes", 1));
    speedups.push_back({m.value("processes", 1), results::number_or(m.value("speedup", json::object()), "median", NAN)});
  }
  report::MachineComm mc{alpha, beta, cores, threads, max_p, {}};
  // The emulated network's curve is the model that model_validation checks.
  if (net) mc.cost = [net, cores, threads](int p) { return comm_cost(*net, p, cores, threads, true); };
  json j = report::model_json(mp, report::default_networks(), beta > 0 ? &mc : nullptr, speedups);
  j["calibration"] = cal;
  if (net && j.contains("this_machine")) j["this_machine"]["network"] = net->value("spec", "");
  j["measured_backend"] = backend;
  // Written only when the experiment ran another precision, so that the
  // section reads as it did before there was a choice.
  if (report::names_precisions(metrics)) j["measured_precision"] = precision;
  j["networks_assumptions"] =
      "Gloo over TCP; bandwidth 90% of the line rate; per-message latency 30 / 20 / 10 us for 10 / 25 / 100 Gbit/s "
      "(kernel TCP stack plus one switch hop); every rank computes as fast as one process of the serial run";
  return j;
}

}  // namespace ddp::experiments
