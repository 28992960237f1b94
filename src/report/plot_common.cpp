#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/gnuplot.h"
#include "report/metrics.h"
#include "report/plot_common.h"

namespace ddp::report::plot {

std::string image(const std::string& name) { return "../" + name + ".png"; }

const BackendStyle* style_of(const std::string& backend) {
  for (const auto& st : kBackendStyles)
    if (backend == st.backend) return &st;
  return nullptr;
}

std::string g(double v) {
  if (!std::isfinite(v)) return "NaN";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string rgb_int(const std::string& hex) { return std::to_string(std::stol(hex.substr(1), nullptr, 16)); }

std::string faint(const std::string& hex) { return "#B0" + hex.substr(1); }

std::vector<Cfg> configurations(const json& metrics, const std::map<std::string, RunResult>& results) {
  std::vector<Cfg> out;
  int k = 0;
  std::map<std::string, int> shade;  // per backend: the next one
  if (!metrics.contains("configurations")) return out;
  const bool with_backend = names_backends(metrics);
  const bool with_precision = names_precisions(metrics);
  for (const auto& c : metrics["configurations"]) {
    Cfg x;
    x.name = c.value("name", "run");
    x.backend = backend_of(c);
    x.precision = precision_of(c);
    x.variant = variant_of(c);
    x.label = run_label(c, with_backend);
    x.processes = c.value("processes", 1);
    x.oversubscribed = flag(c, "oversubscribed");
    x.metrics = &c;
    const auto it = results.find(x.name);
    x.results = it != results.end() ? &it->second : nullptr;
    x.failed = x.results == nullptr || c.value("status", "failed") == "failed" || c.value("status", "") == "not run";
    // With backends there are twice the bars: short labels keep them apart.
    // The label names the precision already (suite.h); the short one too.
    x.bar_label = with_backend && !x.backend.empty()
                      ? "N = " + std::to_string(x.processes) + "\n" + x.backend + (with_precision ? ", " + x.precision : "") +
                            (x.variant.empty() ? "" : ", " + x.variant)
                      : x.label;
    if (x.failed) x.bar_label += "\n(FAILED)";
    else if (x.oversubscribed) x.bar_label += with_backend || with_precision ? "\n(oversub.)" : "\n(oversubscribed)";
    const BackendStyle* st = with_backend ? style_of(x.backend) : nullptr;
    if (x.backend.empty()) x.color = x.precision == "fp32" ? kSerialColor : kPalette[9];
    else if (st) x.color = st->shades[shade[x.backend]++ % 5];
    else x.color = kPalette[k++ % 10];
    out.push_back(x);
  }
  return out;
}

std::vector<Series> speedup_series(const std::vector<Cfg>& cs) {
  std::vector<std::string> backends, precisions, variants;
  auto add = [](std::vector<std::string>& v, const std::string& x) {
    if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
  };
  for (const auto& c : cs) {
    if (c.failed || c.backend.empty()) continue;
    add(backends, c.backend);
    add(precisions, c.precision);
    add(variants, c.variant);
  }
  std::vector<Series> out;
  for (const auto& b : backends)
    for (const auto& p : precisions)
      for (const auto& v : variants) out.push_back({b, p, v});
  if (out.empty()) out.push_back({"", cs.empty() ? "fp32" : cs.front().precision, ""});
  return out;
}

bool any_results(const std::vector<Cfg>& cs) {
  return std::any_of(cs.begin(), cs.end(), [](const Cfg& c) { return !c.failed; });
}

int repeats(const json& metrics) {
  return metrics.contains("experiment") && metrics["experiment"].contains("config")
             ? metrics["experiment"]["config"].value("repeats", 1)
             : 1;
}

int cores(const json& metrics) { return metrics.contains("machine") ? metrics["machine"].value("cores", 1) : 1; }

int threads(const json& metrics) {
  return metrics.contains("experiment") && metrics["experiment"].contains("config")
             ? metrics["experiment"]["config"].value("threads", 1)
             : 1;
}

int batch(const json& metrics) {
  return metrics.contains("experiment") && metrics["experiment"].contains("config")
             ? metrics["experiment"]["config"].value("batch_size", 64)
             : 64;
}

std::string range_note(const json& metrics, const std::string& what) {
  const int r = repeats(metrics);
  return r > 1 ? what + ": median of " + std::to_string(r) + " runs, whiskers: min-max" : "";
}

// "set xtics (...)" naming the bars 0..n-1 after the configurations.
std::string bar_xtics(const std::vector<Cfg>& cs, const std::vector<std::string>& second_lines) {
  std::string s = "set xtics (";
  for (size_t i = 0; i < cs.size(); ++i) {
    std::string label = cs[i].bar_label;
    if (i < second_lines.size() && !second_lines[i].empty()) label += "\n" + second_lines[i];
    std::string escaped;  // an explicit tic label is a format: % must be doubled
    for (char ch : label) escaped += ch == '%' ? std::string("%%") : std::string(1, ch);
    s += (i ? ", " : "") + gp_dquote(gp_text(escaped)) + " " + std::to_string(i);
  }
  // Many bars: a smaller font keeps their labels apart.
  return s + ") scale 0" + (cs.size() > 5 ? " font ',12'" : "") + "\n";
}

std::string per_epoch_file(const Cfg& c) { return "epochs_" + c.name + ".dat"; }

std::string epochs_data(const Cfg& c) {
  std::string d = "# " + c.label + ": per epoch\n# epoch  train_loss  test_loss  test_accuracy_%  time_s  samples_per_s\n";
  for (const auto& e : c.results->epochs)
    d += g(e.epoch) + "  " + g(e.loss) + "  " + g(e.test_loss) + "  " + g(100 * e.test_accuracy) + "  " + g(e.time_s) +
         "  " + g(e.samples_per_s) + "\n";
  return d;
}

// "set logscale y" with 1-2-5 tics when the per-epoch losses span a wide range, else a linear axis.
std::string epoch_loss_axis(const std::vector<Cfg>& cs, bool with_test, const std::string& label) {
  double lo = INFINITY, hi = 0;
  for (const auto& c : cs) {
    if (c.failed) continue;
    for (const auto& e : c.results->epochs)
      for (const double v : {e.loss, with_test ? e.test_loss : NAN})
        if (std::isfinite(v) && v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (hi > 0 && hi / lo > 8) return "set ylabel '" + label + " (log scale)'\nset logscale y\n" + std::string(kLossTics);
  return "set ylabel '" + label + "'\nunset logscale y\nset ytics autofreq format '%g'\nset autoscale y\nset offsets 0, 0, graph 0.05, graph 0.05\n";
}

int epochs_of(const std::vector<Cfg>& cs) {
  int e = 1;
  for (const auto& c : cs)
    if (!c.failed) e = std::max(e, static_cast<int>(c.results->epochs.size()));
  return e;
}

std::string epoch_axis(int epochs) {
  std::string s = "set xrange [" + g(epochs > 1 ? 1 - 0.1 * (epochs - 1) / 4 : 0.5) + ":" +
                  g(epochs > 1 ? epochs + 0.1 * (epochs - 1) / 4 : 1.5) + "]\n";
  if (epochs <= 20) s += "set xtics 1\n";
  return s;
}

}  // namespace ddp::report::plot
