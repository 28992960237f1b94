#include "report/scaling_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>

#include "results/json_reader.h"

namespace ddp::report {

using nlohmann::json;

std::vector<Network> default_networks() {
  const double gbit = 1e9 / 8;  // bytes per second of 1 Gbit/s
  return {{"10 Gbit/s Ethernet", 30e-6, 0.9 * 10 * gbit},
          {"25 Gbit/s Ethernet", 20e-6, 0.9 * 25 * gbit},
          {"100 Gbit/s Ethernet", 10e-6, 0.9 * 100 * gbit}};
}

double ModelParams::gradient_bytes() const {
  double n = 0;
  for (const auto& b : buckets) n += b.bytes;
  return n;
}

double ring_allreduce_s(double bytes, int p, double alpha_s, double beta_Bps) {
  if (p <= 1) return 0;
  return 2.0 * (p - 1) * alpha_s + 2.0 * (p - 1) / p * bytes / beta_Bps;
}

double exposed_allreduce_s(const std::vector<Bucket>& buckets, double t_bwd_step, int p, double alpha_s,
                           double beta_Bps) {
  if (p <= 1 || buckets.empty()) return 0;
  double f = 0;
  for (const auto& b : buckets) f = std::max(f, b.ready_fraction * t_bwd_step) + ring_allreduce_s(b.bytes, p, alpha_s, beta_Bps);
  return std::max(0.0, f - t_bwd_step);
}

double shared_cores_slowdown(int p, int threads, int cores) {
  return cores > 0 ? std::max(1.0, static_cast<double>(p) * threads / cores) : 1.0;
}

namespace {

Prediction raw(const ModelParams& m, int p, const CommCost& c, double slow) {
  Prediction r;
  r.p = p;
  const double shard = std::ceil(m.train_samples / p);
  r.steps = std::ceil(shard / m.batch);
  r.samples_per_step = r.steps > 0 ? shard / r.steps : 0;
  r.allreduce_step_s = step_allreduce_s(m.buckets, p, c);
  double cpu = 0;  // the step's communication CPU, when it is taken from compute
  if (c.cpu_shared && p > 1)
    for (const auto& b : m.buckets) cpu += c.cpu_s + c.cpu_s_per_byte * b.bytes;
  const double t_bwd = r.samples_per_step * m.t_bwd * slow + cpu;
  r.compute_step_s = r.samples_per_step * m.t_step * slow + cpu;
  if (p > 1 && !m.buckets.empty()) {
    double f = 0, burst = c.burst_bytes;
    for (const auto& b : m.buckets) {
      double t = ring_allreduce_s(b.bytes, p, c.alpha_s, c.beta_Bps);
      const double free = std::min(burst, 2.0 * (p - 1) / p * b.bytes);  // bytes each direction sends
      t -= free / c.beta_Bps;
      burst = 0;  // only the step's first bucket meets an idle link
      f = std::max(f, b.ready_fraction * t_bwd) + t;
    }
    r.exposed_step_s = std::max(0.0, f - t_bwd);
  }
  r.train_epoch_s = r.steps * (r.compute_step_s + r.exposed_step_s);
  r.eval_epoch_s = std::ceil(m.test_samples / p) * m.t_eval * slow;
  r.epoch_s = r.train_epoch_s + r.eval_epoch_s;
  return r;
}

}  // namespace

double step_allreduce_s(const std::vector<Bucket>& buckets, int p, const CommCost& c) {
  double t = 0, burst = c.burst_bytes;
  for (const auto& b : buckets) {
    t += ring_allreduce_s(b.bytes, p, c.alpha_s, c.beta_Bps);
    if (p > 1) t -= std::min(burst, 2.0 * (p - 1) / p * b.bytes) / c.beta_Bps;
    burst = 0;
  }
  return t;
}

Prediction predict(const ModelParams& m, int p, const CommCost& c, double slow) {
  if (p < 1) throw std::invalid_argument("predict: p must be >= 1");
  Prediction r = raw(m, p, c, slow);
  const Prediction one = raw(m, 1, c, 1);
  r.speedup = r.epoch_s > 0 ? one.epoch_s / r.epoch_s : 0;
  r.efficiency = r.speedup / p;
  return r;
}

Prediction predict(const ModelParams& m, int p, double alpha, double beta, double slow) {
  return predict(m, p, CommCost{alpha, beta}, slow);
}

std::pair<double, double> fit_line(const std::vector<std::pair<double, double>>& xy) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& [x, y] : xy) n += 1, sx += x, sy += y, sxx += x * x, sxy += x * y;
  const double det = n * sxx - sx * sx;
  if (!(det > 0)) throw std::invalid_argument("fit_line: needs at least two different x");
  return {(sxx * sy - sx * sxy) / det, (n * sxy - sx * sy) / det};
}

std::pair<double, double> fit_alpha_beta(const std::vector<std::pair<double, double>>& samples, int p) {
  if (p < 2) throw std::invalid_argument("fit_alpha_beta: needs p >= 2");
  // t = a + b n, weights 1/t^2 (relative error); a = 2(p-1) alpha, b = 2(p-1)/(p beta).
  auto fit = [&](bool intercept) {
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (const auto& [n, t] : samples) {
      if (!(t > 0)) continue;
      const double w = 1 / (t * t);
      sw += w, sx += w * n, sy += w * t, sxx += w * n * n, sxy += w * n * t;
    }
    if (!intercept) return std::make_pair(0.0, sxx > 0 ? sxy / sxx : 0.0);
    const double det = sw * sxx - sx * sx;
    if (!(det > 0)) throw std::invalid_argument("fit_alpha_beta: needs at least two different message sizes");
    return std::make_pair((sxx * sy - sx * sxy) / det, (sw * sxy - sx * sy) / det);
  };
  auto [a, b] = fit(true);
  if (a < 0) std::tie(a, b) = fit(false);
  if (!(b > 0)) throw std::invalid_argument("fit_alpha_beta: all-reduce time does not grow with the message size");
  return {a / (2.0 * (p - 1)), 2.0 * (p - 1) / (p * b)};
}

double effective_beta(double busy, const std::vector<Bucket>& buckets, int p, double alpha) {
  if (p < 2 || buckets.empty()) return std::numeric_limits<double>::quiet_NaN();
  double bytes = 0;
  for (const auto& b : buckets) bytes += b.bytes;
  const double bandwidth_part = busy - static_cast<double>(buckets.size()) * 2.0 * (p - 1) * alpha;
  if (!(bandwidth_part > 0)) return std::numeric_limits<double>::quiet_NaN();
  return 2.0 * (p - 1) / p * bytes / bandwidth_part;
}

ModelParams calibrate(const results::RunResult& r, const std::vector<std::string>& layers,
                      const std::vector<ParamBlock>& layout, const std::vector<std::pair<size_t, size_t>>& buckets,
                      double bytes_per_element) {
  ModelParams m;
  m.train_samples = static_cast<double>(r.samples_per_epoch);
  m.test_samples = static_cast<double>(r.test_samples);
  m.batch = r.config.batch_size;
  if (r.epochs.empty()) throw std::invalid_argument("the results have no epochs");
  double train = 0, bwd = 0, eval = 0;
  for (const auto& e : r.epochs) {
    train += e.train_time_s;
    eval += e.eval_time_s;
    bwd += e.phases.backward;
  }
  const double epochs = static_cast<double>(r.epochs.size());
  if (!(m.train_samples > 0) || !(m.test_samples > 0) || m.batch < 1 || !(train > 0))
    throw std::invalid_argument("the results have no training time or samples");
  m.t_step = train / (epochs * m.train_samples);
  m.t_bwd = bwd / (epochs * m.train_samples);
  m.t_eval = eval / (epochs * m.test_samples);

  // Backward runs the layers in reverse: each layer's gradients are final once its
  // backward is done; cumulative fractions from the per-layer times.
  std::map<std::string, double> done;  // layer -> fraction of backward done after it
  double total = 0;
  const auto backward_s = [&](const std::string& layer) {
    const auto it = r.layer_times_s.find(layer);
    return it == r.layer_times_s.end() ? 0.0 : it->second.backward_s;
  };
  for (const auto& l : layers) total += backward_s(l);
  double acc = 0;
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    acc += backward_s(*it);
    done[*it] = total > 0 ? acc / total : 1.0;
  }
  for (const auto& [begin, end] : buckets) {
    double ready = 0;  // outside every layer's block: final from the start
    for (const auto& b : layout)
      if (begin >= b.offset && begin < b.offset + b.count) ready = done.count(b.layer) ? done[b.layer] : 1.0;
    m.buckets.push_back({static_cast<double>(end - begin) * bytes_per_element, ready});
  }
  return m;
}

json model_json(const ModelParams& m, const std::vector<Network>& networks, const MachineComm* machine,
                const std::vector<std::pair<int, double>>& measured) {
  json j;
  j["status"] = "ok";
  j["kind"] =
      "weak scaling per step: the batch per process is fixed, so a step's compute is constant and an epoch has 1/p of "
      "the steps";
  j["formula"] = {
      {"epoch", "T_epoch(p) = S(p) * (b(p) * t_step + exposed(p)) + ceil(E / p) * t_eval"},
      {"steps", "S(p) = ceil(ceil(M / p) / B), b(p) = ceil(M / p) / S(p)"},
      {"ring_allreduce", "T_ring(n, p) = 2 (p - 1) alpha + 2 (p - 1) / p * n / beta"},
      {"exposed",
       "f_i = max(f_(i-1), r_i * T_bwd) + T_ring(n_i, p) over the buckets in order; exposed = max(0, f_last - T_bwd), "
       "T_bwd = b(p) * t_bwd"},
      {"speedup", "speedup(p) = T_epoch(1) / T_epoch(p), efficiency(p) = speedup(p) / p"},
      {"this_machine", "compute (t_step, t_bwd, t_eval) x max(1, p * threads / cores)"}};
  j["params"] = to_json(m);
  j["networks"] = json::array();
  for (const auto& n : networks) {
    json jn = to_json(n);
    jn["predictions"] = json::array();
    for (int p = 1; p <= 1024; p *= 2) jn["predictions"].push_back(to_json(predict(m, p, n.alpha_s, n.beta_Bps)));
    Prediction best = predict(m, 1, n.alpha_s, n.beta_Bps);
    for (int p = 2; p <= 1024; ++p) {
      const Prediction q = predict(m, p, n.alpha_s, n.beta_Bps);
      if (q.speedup > best.speedup) best = q;
    }
    jn["best"] = {{"p", best.p}, {"speedup", best.speedup}, {"efficiency", best.efficiency}};
    j["networks"].push_back(jn);
  }
  if (machine) {
    json jm = {{"alpha_s", machine->alpha_s},
               {"beta_bytes_per_s", machine->beta_Bps},
               {"cores", machine->cores},
               {"threads_per_process", machine->threads_per_process}};
    jm["predictions"] = json::array();
    const auto machine_predict = [&](int p) {
      const double slowdown = shared_cores_slowdown(p, machine->threads_per_process, machine->cores);
      return machine->cost ? predict(m, p, machine->cost(p), slowdown)
                           : predict(m, p, machine->alpha_s, machine->beta_Bps, slowdown);
    };
    for (int p = 1; p <= machine->max_p; ++p) jm["predictions"].push_back(to_json(machine_predict(p)));
    jm["vs_measured"] = json::array();
    for (const auto& [p, sp] : measured) {
      const Prediction q = machine_predict(p);
      jm["vs_measured"].push_back({{"p", p},
                                   {"measured_speedup", std::isfinite(sp) ? json(sp) : json(nullptr)},
                                   {"model_speedup", q.speedup},
                                   {"model_exposed_allreduce_per_step_s", q.exposed_step_s}});
    }
    j["this_machine"] = jm;
  }
  return j;
}

json to_json(const ModelParams& m) {
  json buckets = json::array();
  for (const auto& b : m.buckets) buckets.push_back({{"bytes", b.bytes}, {"ready_fraction", b.ready_fraction}});
  return {{"train_samples", m.train_samples},         {"test_samples", m.test_samples},
          {"batch_per_process", m.batch},             {"t_step_s_per_sample", m.t_step},
          {"t_bwd_s_per_sample", m.t_bwd},            {"t_eval_s_per_test_sample", m.t_eval},
          {"gradient_bytes", m.gradient_bytes()},     {"buckets", buckets}};
}

ModelParams model_params_from_json(const json& j) {
  const results::FieldReader f(j, "", "scaling_model.params");
  ModelParams m;
  m.train_samples = f.required<double>("train_samples");
  m.test_samples = f.required<double>("test_samples");
  m.batch = f.required<int>("batch_per_process");
  m.t_step = f.required<double>("t_step_s_per_sample");
  m.t_bwd = f.required<double>("t_bwd_s_per_sample");
  m.t_eval = f.required<double>("t_eval_s_per_test_sample");
  for (size_t i = 0; i < f.array("buckets").size(); ++i) {
    const results::FieldReader b = f.element("buckets", i);
    m.buckets.push_back({b.required<double>("bytes"), b.required<double>("ready_fraction")});
  }
  return m;
}

json to_json(const Prediction& p) {
  return {{"p", p.p},
          {"steps_per_epoch", p.steps},
          {"samples_per_step", p.samples_per_step},
          {"compute_per_step_s", p.compute_step_s},
          {"allreduce_per_step_s", p.allreduce_step_s},
          {"exposed_allreduce_per_step_s", p.exposed_step_s},
          {"epoch_s", p.epoch_s},
          {"speedup", p.speedup},
          {"efficiency", p.efficiency}};
}

json to_json(const Network& n) {
  return {{"name", n.name}, {"alpha_s", n.alpha_s}, {"beta_bytes_per_s", n.beta_Bps}, {"gbit_per_s", n.beta_Bps * 8 / 1e9}};
}

Network network_from_json(const json& j) {
  const results::FieldReader f(j, "", "scaling_model.networks[]");
  return {f.required<std::string>("name"), f.required<double>("alpha_s"), f.required<double>("beta_bytes_per_s")};
}

std::string model_backend(const std::vector<std::string>& backends) {
  if (std::find(backends.begin(), backends.end(), "gloo") != backends.end()) return "gloo";
  return backends.empty() ? "" : backends.front();
}

std::string model_precision(const std::vector<std::string>& precisions) {
  if (precisions.empty() || std::find(precisions.begin(), precisions.end(), "fp32") != precisions.end()) return "fp32";
  return precisions.front();
}

}  // namespace ddp::report
