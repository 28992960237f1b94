#include "report/plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/gnuplot.h"
#include "report/metrics.h"
#include "report/palette.h"
#include "report/scaling_model.h"

namespace ddp::report {

using nlohmann::json;

namespace {

// A boolean field that may be missing or null.
bool flag(const json& j, const char* key) { return j.is_object() && j.contains(key) && j[key].is_boolean() && j[key].get<bool>(); }

const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
const char* const kSerialColor = "#333333";
// Each backend's runs in shades of one colour, so that the plots tell the
// backends apart at a glance; the first shade is its measured-speedup line.
struct BackendStyle {
  const char* backend;
  const char* shades[5];
  const char* text;  // a darker shade, for labels
};
const BackendStyle kBackendStyles[] = {
    {"gloo", {"#1f77b4", "#08519c", "#6baed6", "#3182bd", "#9ecae1"}, "#1f4f7f"},
    {"mpi", {"#d62728", "#a50f15", "#fb6a4a", "#de2d26", "#fc9272"}, "#8b1a1a"}};

const BackendStyle* style_of(const std::string& backend) {
  for (const auto& st : kBackendStyles)
    if (backend == st.backend) return &st;
  return nullptr;
}
// Tics of a logarithmic loss axis: 1-2-5 steps.
const char* const kLossTics =
    "set ytics (0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20) format '%g'\nset mytics 10\n"
    "set autoscale y noextend\nset offsets 0, 0, graph 0.04, graph 0.04\n";

std::string g(double v) {
  if (!std::isfinite(v)) return "NaN";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

double num(const json& j, const char* key, double fallback = NAN) {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

double med(const json& c, const char* key) { return c.contains(key) ? num(c[key], "median") : NAN; }
double lo(const json& c, const char* key) { return c.contains(key) ? num(c[key], "min") : NAN; }
double hi(const json& c, const char* key) { return c.contains(key) ? num(c[key], "max") : NAN; }

// 0xRRGGBB as the integer gnuplot's "lc rgb variable" reads.
std::string rgb_int(const std::string& hex) { return std::to_string(std::stol(hex.substr(1), nullptr, 16)); }

// "#C0RRGGBB": the colour, mostly transparent.
std::string faint(const std::string& hex) { return "#B0" + hex.substr(1); }

struct Cfg {
  std::string name, label, color;
  std::string bar_label;  // under its bar: the label (with backends: N and the backend), and what went wrong
  std::string backend;    // "" for the serial run
  int processes = 1;
  bool oversubscribed = false, failed = false;
  const json* metrics = nullptr;
  const json* results = nullptr;  // null when it failed
};

std::vector<Cfg> configurations(const json& metrics, const std::map<std::string, json>& results) {
  std::vector<Cfg> out;
  int k = 0;
  std::map<std::string, int> shade;  // per backend: the next one
  if (!metrics.contains("configurations")) return out;
  const bool with_backend = names_backends(metrics);
  for (const auto& c : metrics["configurations"]) {
    Cfg x;
    x.name = c.value("name", "run");
    x.backend = backend_of(c);
    x.label = run_label(c, with_backend);
    x.processes = c.value("processes", 1);
    x.oversubscribed = flag(c, "oversubscribed");
    x.metrics = &c;
    const auto it = results.find(x.name);
    x.results = it != results.end() && it->second.is_object() ? &it->second : nullptr;
    x.failed = x.results == nullptr || c.value("status", "failed") == "failed" || c.value("status", "") == "not run";
    // With backends there are twice the bars: short labels keep them apart.
    x.bar_label =
        with_backend && !x.backend.empty() ? "N = " + std::to_string(x.processes) + "\n" + x.backend : x.label;
    if (x.failed) x.bar_label += "\n(FAILED)";
    else if (x.oversubscribed) x.bar_label += with_backend ? "\n(oversub.)" : "\n(oversubscribed)";
    const BackendStyle* st = with_backend ? style_of(x.backend) : nullptr;
    if (x.name == "serial") x.color = kSerialColor;
    else if (st) x.color = st->shades[shade[x.backend]++ % 5];
    else x.color = kPalette[k++ % 10];
    out.push_back(x);
  }
  return out;
}

// The backends with a successful parallel run, in order: one measured series
// each (one unnamed series when there is none: the serial run alone).
std::vector<std::string> backend_series(const std::vector<Cfg>& cs) {
  std::vector<std::string> out;
  for (const auto& c : cs)
    if (!c.failed && !c.backend.empty() && std::find(out.begin(), out.end(), c.backend) == out.end())
      out.push_back(c.backend);
  if (out.empty()) out.push_back("");
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

std::string range_note(const json& metrics, const std::string& what = "bars") {
  const int r = repeats(metrics);
  return r > 1 ? what + ": median of " + std::to_string(r) + " runs, whiskers: min-max" : "";
}

// "set xtics (...)" naming the bars 0..n-1 after the configurations.
std::string bar_xtics(const std::vector<Cfg>& cs, const std::vector<std::string>& second_lines = {}) {
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
  for (const auto& e : (*c.results)["epochs"])
    d += g(num(e, "epoch")) + "  " + g(num(e, "loss")) + "  " + g(num(e, "test_loss")) + "  " +
         g(100 * num(e, "test_accuracy")) + "  " + g(num(e, "time_s")) + "  " + g(num(e, "samples_per_s")) + "\n";
  return d;
}

// "set logscale y" with 1-2-5 tics when the per-epoch losses span a wide range, else a linear axis.
std::string epoch_loss_axis(const std::vector<Cfg>& cs, bool with_test, const std::string& label) {
  double lo = INFINITY, hi = 0;
  for (const auto& c : cs) {
    if (c.failed) continue;
    for (const auto& e : (*c.results)["epochs"])
      for (const char* k : {"loss", "test_loss"}) {
        if (!with_test && std::string(k) == "test_loss") continue;
        const double v = num(e, k);
        if (std::isfinite(v) && v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
      }
  }
  if (hi > 0 && hi / lo > 8) return "set ylabel '" + label + " (log scale)'\nset logscale y\n" + std::string(kLossTics);
  return "set ylabel '" + label + "'\nunset logscale y\nset ytics autofreq format '%g'\nset autoscale y\nset offsets 0, 0, graph 0.05, graph 0.05\n";
}

int epochs_of(const std::vector<Cfg>& cs) {
  int e = 1;
  for (const auto& c : cs)
    if (!c.failed) e = std::max(e, static_cast<int>((*c.results)["epochs"].size()));
  return e;
}

std::string epoch_axis(int epochs) {
  std::string s = "set xrange [" + g(epochs > 1 ? 1 - 0.1 * (epochs - 1) / 4 : 0.5) + ":" +
                  g(epochs > 1 ? epochs + 0.1 * (epochs - 1) / 4 : 1.5) + "]\n";
  if (epochs <= 20) s += "set xtics 1\n";
  return s;
}

// ---------------------------------------------------------------- loss curves
PlotFiles loss_curves(const json& metrics, const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "loss_curves";
  p.title = "Training loss per step and per epoch, serial vs data-parallel";
  const int epochs = epochs_of(cs);
  std::string s = gp_preamble("loss_curves.png", 1400, 650, p.title);
  s += "set multiplot layout 1,2 title " +
       gp_quote("Training loss: serial vs data-parallel (batch " + std::to_string(batch(metrics)) +
                " per process)") + " font ',19'\n";
  // The raw losses of thousands of steps are a grey fog: drawn only for short runs.
  // The smoothing window grows with the run: 0.1 epoch, 0.25 epoch from 5 epochs on.
  const double window_epochs = epochs >= 5 ? 0.25 : 0.1;
  size_t most_steps = 0;
  for (const auto& c : cs)
    if (!c.failed) most_steps = std::max(most_steps, (*c.results)["step_losses"].size());
  const bool raw = most_steps <= 2500;
  char sub[160];
  std::snprintf(sub, sizeof sub, "every step (%smoving average over %g epoch)", raw ? "thin: raw; thick: " : "",
                window_epochs);
  s += "set title " + gp_quote(sub) + " font ',15'\n";
  s += "set xlabel 'epoch'\nset ylabel 'training loss (log scale)'\nset logscale y\n" + std::string(kLossTics);
  s += "set xrange [0:" + g(epochs) + "]\n";
  if (epochs <= 20) s += "set xtics 1\n";
  s += "set key top right\n";
  std::string plot;
  double lo = INFINITY, hi = 0;  // of the smoothed curves: the y range (raw extremes may fall outside)
  for (const auto& c : cs) {
    if (c.failed) continue;
    const json& r = *c.results;
    const double steps = std::max(1.0, num(r, "steps_per_epoch", 1));
    std::vector<double> loss;
    for (const auto& l : r["step_losses"]) loss.push_back(l.is_number() ? l.get<double>() : NAN);
    const auto smooth = moving_average(loss, std::max(1, static_cast<int>(std::lround(steps * window_epochs))));
    for (double v : smooth)
      if (std::isfinite(v) && v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
    std::string d = "# " + c.label + ": training loss of every step (mean over ranks)\n# epoch  loss  moving_average\n";
    for (size_t i = 0; i < loss.size(); ++i) d += g((i + 1) / steps) + "  " + g(loss[i]) + "  " + g(smooth[i]) + "\n";
    const std::string file = "loss_steps_" + c.name + ".dat";
    p.data.push_back({file, d});
    if (!plot.empty()) plot += ", \\\n     ";
    if (raw) plot += gp_quote(file) + " using 1:2 with lines lw 1 lc rgb '" + faint(c.color) + "' notitle, \\\n     ";
    plot += gp_quote(file) + " using 1:3 with lines lw 3 lc rgb '" + c.color + "' title " + gp_label(c.label);
  }
  if (hi > 0) s += "set yrange [" + g(lo / (raw ? 2.0 : 1.3)) + ":" + g(hi * 1.3) + "]\n";
  s += "plot " + plot + "\n\n";

  s += "set title 'every epoch (solid: training loss; dashed: test loss)' font ',15'\n";
  s += "set xlabel 'epoch'\nset autoscale x\n" + epoch_loss_axis(cs, true, "loss") + epoch_axis(epochs);
  plot.clear();
  for (const auto& c : cs) {
    if (c.failed) continue;
    const std::string file = per_epoch_file(c);
    if (!plot.empty()) plot += ", \\\n     ";
    plot += gp_quote(file) + " using 1:2 with linespoints pt 7 ps 1.3 lw 3 lc rgb '" + c.color + "' title " +
            gp_label(c.label) + ", \\\n     " + gp_quote(file) + " using 1:3 with linespoints pt 6 ps 1.3 lw 2 dt 2 lc rgb '" +
            c.color + "' notitle";
  }
  s += "plot " + plot + "\nunset multiplot\n";
  p.script = s;
  return p;
}

// ---------------------------------------------------------------- speedup
PlotFiles speedup_plot(const json& metrics, const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "speedup";
  p.title = "Speedup T_serial / T_N against the ideal, with the core count marked";
  const int c = cores(metrics), t = threads(metrics);
  int maxp = 1;
  double maxs = 1;
  for (const auto& x : cs) {
    maxp = std::max(maxp, x.processes);
    if (!x.failed) maxs = std::max(maxs, std::isfinite(hi(*x.metrics, "speedup")) ? hi(*x.metrics, "speedup")
                                                                                  : med(*x.metrics, "speedup"));
  }
  const auto series = backend_series(cs);
  const bool named = names_backends(metrics);
  std::string d = "# speedup = T_serial / T_N (total_time_s)\n# processes  median  min  max  label\n";
  for (size_t k = 0; k < series.size(); ++k) {
    if (k) d += "\n\n";  // the next gnuplot data set (index k)
    if (named) d += "# " + backend_name(series[k]) + "\n";
    for (const auto& x : cs) {
      if (x.failed || !(x.backend.empty() || x.backend == series[k])) continue;
      d += std::to_string(x.processes) + "  " + g(med(*x.metrics, "speedup")) + "  " + g(lo(*x.metrics, "speedup")) +
           "  " + g(hi(*x.metrics, "speedup")) + "  \"" + x.label + "\"\n";
    }
  }
  p.data.push_back({"speedup.dat", d});
  const bool log = maxp > 16;
  const int fit = std::max(1, c / std::max(1, t));  // processes that fit the cores
  const double xmax = log ? std::pow(2, std::ceil(std::log2(std::max(maxp, fit + 1)))) : std::max(maxp, fit + 1) + 0.6;
  const double ymax = log ? xmax : std::max(static_cast<double>(std::max(maxp, fit + 1)), maxs) * 1.08 + 0.2;

  std::string s = gp_preamble("speedup.png", 1000, 700, p.title);
  std::string subtitle = "weak scaling: batch " + std::to_string(batch(metrics)) + " per process";
  if (!range_note(metrics).empty()) subtitle += "; " + range_note(metrics, "points");
  s += "set title " + gp_dquote("Speedup over the serial run\n{/*0.75 " + gp_text(subtitle) + "}") + "\n";
  s += "set xlabel 'processes N'\nset ylabel 'speedup  T_{serial} / T_{N}'\n";
  if (log) {
    s += "set logscale xy 2\nset xrange [1:" + g(xmax) + "]\nset yrange [0.5:" + g(ymax) + "]\n";
  } else {
    s += "set xrange [0.4:" + g(xmax) + "]\nset yrange [0:" + g(ymax) + "]\nset xtics 1\n";
  }
  s += "set key top left\n";
  if (fit < maxp) {
    s += "set object 1 rectangle from first " + g(fit + 0.5) + ", graph 0 to graph 1, graph 1 fc rgb '#f1f1f1' fs solid 1.0 noborder behind\n";
    s += "set label 1 " + gp_dquote("oversubscribed:\nprocesses × threads > cores") + " at first " + g(fit + 0.6) +
         ", graph 0.05 left tc rgb '#777777' font ',13'\n";
  }
  s += "set arrow 1 from first " + g(fit) + ", graph 0 to first " + g(fit) + ", graph 1 nohead dt 2 lw 2 lc rgb '#777777' front\n";
  s += "set label 2 " + gp_quote(std::to_string(c) + " cores" + (t > 1 ? " / " + std::to_string(t) + " threads per process" : "")) +
       " at first " + g(fit) + ", graph 0.62 center rotate by 90 offset -0.9,0 tc rgb '#555555' font ',13' front\n";
  std::string plot = "x with lines dt 2 lw 2 lc rgb '#999999' title 'ideal (speedup = N)'";
  if (metrics.contains("scaling_model") && metrics["scaling_model"].contains("this_machine") &&
      metrics["scaling_model"]["this_machine"].contains("predictions")) {
    std::string m = "# the scaling model for this machine (processes share its cores)\n# processes  speedup  efficiency\n";
    for (const auto& q : metrics["scaling_model"]["this_machine"]["predictions"])
      if (num(q, "p") <= maxp) m += g(num(q, "p")) + "  " + g(num(q, "speedup")) + "  " + g(num(q, "efficiency")) + "\n";
    p.data.push_back({"speedup_model.dat", m});
    plot += ", \\\n     'speedup_model.dat' using 1:2 with lines dt 3 lw 3 lc rgb '#ff7f0e' title 'model of this machine'";
  }
  for (size_t k = 0; k < series.size(); ++k) {
    const BackendStyle* st = style_of(series[k]);
    const std::string color = st ? st->shades[0] : kPalette[k % 10], text = st ? st->text : kSerialColor;
    const std::string data = "'speedup.dat' index " + std::to_string(k);
    plot += ", \\\n     " + data + " using 1:2:3:4 with yerrorbars pt 7 ps 2 lw 2 lc rgb '" + color + "' notitle";
    plot += ", \\\n     " + data + " using 1:2 with lines lw 3 lc rgb '" + color + "' title " +
            gp_label(named ? "measured, " + backend_name(series[k]) : "measured");
    // One backend's labels above its points, the next one's below.
    plot += ", \\\n     " + data + " using 1:2:(sprintf('%.2f×', $2)) with labels left offset 1.0," +
            g(k % 2 ? -0.9 : 0.9) + " font ',14' tc rgb '" + text + "' notitle";
  }
  s += "plot " + plot + "\n";
  p.script = s;
  return p;
}

// ---------------------------------------------------------------- efficiency
PlotFiles efficiency_plot(const json& metrics, const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "efficiency";
  p.title = "Parallel efficiency (speedup / N) per configuration";
  std::string d = "# efficiency = speedup / N, in %\n# index  median  min  max  colour(0xRRGGBB)  label\n";
  double top = 100;
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].failed) continue;
    const json& m = *cs[i].metrics;
    top = std::max(top, 100 * (std::isfinite(hi(m, "efficiency")) ? hi(m, "efficiency") : med(m, "efficiency")));
    d += std::to_string(i) + "  " + g(100 * med(m, "efficiency")) + "  " + g(100 * lo(m, "efficiency")) + "  " +
         g(100 * hi(m, "efficiency")) + "  " + rgb_int(cs[i].color) + "  \"" + cs[i].label + "\"\n";
  }
  p.data.push_back({"efficiency.dat", d});
  std::string s = gp_preamble("efficiency.png", 1000, 700, p.title);
  std::string sub = "100% = N processes are N times as fast as one";
  if (!range_note(metrics).empty()) sub += "; " + range_note(metrics);
  s += "set title " + gp_dquote("Parallel efficiency\n{/*0.75 " + gp_text(sub) + "}") + "\n";
  s += "set ylabel 'efficiency = speedup / N  (%)'\nset xlabel ''\n";
  s += "set style fill solid 0.85 border lc rgb '#ffffff'\nset boxwidth 0.6\n";
  s += "set xrange [-0.6:" + g(cs.size() - 0.4) + "]\nset yrange [0:" + g(std::ceil(top * 1.15 / 10) * 10) + "]\n";
  s += bar_xtics(cs) + "set bmargin 4.5\n";
  s += "set grid noxtics ytics\n";
  s += "set arrow 1 from graph 0, first 100 to graph 1, first 100 nohead dt 2 lw 2 lc rgb '#888888' front\n";
  s += "set label 1 'ideal' at graph 0.995, first 100 right offset 0,0.8 tc rgb '#666666' front\n";
  s += "unset key\n";
  s += "plot 'efficiency.dat' using 1:2:5 with boxes lc rgb variable, \\\n"
       + std::string(repeats(metrics) > 1 ? "     'efficiency.dat' using 1:3:(0):($4-$3) with vectors heads size screen 0.008,90 lw 2 lc rgb '#333333', \\\n" : "") +
       "     'efficiency.dat' using 1:($4 > $2 ? $4 : $2):(sprintf('%.0f%%', $2)) with labels offset 0,0.9 font ',15'\n";
  p.script = s;
  return p;
}

// ---------------------------------------------------------------- comparison
PlotFiles comparison_plot(const json& metrics, const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "training_comparison";
  p.title = "Time, throughput, test accuracy and loss of every configuration";
  std::string d = "# index  total_time_s(median min max)  throughput_samples_per_s(median min max)  colour  label\n";
  double tmax = 0, qmax = 0;
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].failed) continue;
    const json& m = *cs[i].metrics;
    tmax = std::max(tmax, std::isfinite(hi(m, "total_time_s")) ? hi(m, "total_time_s") : 0);
    qmax = std::max(qmax, std::isfinite(hi(m, "throughput_samples_per_s")) ? hi(m, "throughput_samples_per_s") : 0);
    d += std::to_string(i) + "  " + g(med(m, "total_time_s")) + "  " + g(lo(m, "total_time_s")) + "  " +
         g(hi(m, "total_time_s")) + "  " + g(med(m, "throughput_samples_per_s")) + "  " +
         g(lo(m, "throughput_samples_per_s")) + "  " + g(hi(m, "throughput_samples_per_s")) + "  " +
         rgb_int(cs[i].color) + "  \"" + cs[i].label + "\"\n";
  }
  p.data.push_back({"comparison.dat", d});
  const int epochs = epochs_of(cs);
  // Wider beyond five bars, so that their labels stay apart.
  const int width = 1400 + 240 * std::max(0, static_cast<int>(cs.size()) - 5);
  std::string s = gp_preamble("training_comparison.png", width, 1000, p.title);
  s += "set multiplot layout 2,2 title " +
       gp_quote("Serial vs data-parallel training: " + std::to_string(epochs) + " epoch" + (epochs > 1 ? "s" : "") +
                ", batch " + std::to_string(batch(metrics)) + " per process") + " font ',19'\n";
  s += "set style fill solid 0.85 border lc rgb '#ffffff'\nset boxwidth 0.6\nunset key\n";
  s += "set xrange [-0.6:" + g(cs.size() - 0.4) + "]\n" + bar_xtics(cs) + "set grid noxtics ytics\nset xlabel ''\nset bmargin 4.5\n";
  s += "set title 'total time (training + evaluation)' font ',15'\nset ylabel 'time (s)'\n";
  s += "set yrange [0:" + g(tmax > 0 ? tmax * 1.18 : 1) + "]\n";
  s += "plot 'comparison.dat' using 1:2:8 with boxes lc rgb variable, \\\n"
       + std::string(repeats(metrics) > 1 ? "     'comparison.dat' using 1:3:(0):($4-$3) with vectors heads size screen 0.008,90 lw 2 lc rgb '#333333', \\\n" : "") +
       "     'comparison.dat' using 1:4:(sprintf('%.1f s', $2)) with labels offset 0,0.9 font ',14'\n";
  s += "set title 'training throughput (all processes)' font ',15'\nset ylabel 'samples / s'\n";
  s += "set yrange [0:" + g(qmax > 0 ? qmax * 1.18 : 1) + "]\n";
  s += "plot 'comparison.dat' using 1:5:8 with boxes lc rgb variable, \\\n"
       + std::string(repeats(metrics) > 1 ? "     'comparison.dat' using 1:6:(0):($7-$6) with vectors heads size screen 0.008,90 lw 2 lc rgb '#333333', \\\n" : "") +
       "     'comparison.dat' using 1:7:(sprintf('%.0f', $5)) with labels offset 0,0.9 font ',14'\n";
  s += "set xtics autofreq scale 0.75\nset grid xtics ytics\nset autoscale y\nset bmargin\nset xlabel 'epoch'\n" + epoch_axis(epochs);
  s += "set key bottom right\n";
  s += "set title 'test accuracy after each epoch' font ',15'\nset ylabel 'test accuracy (%)'\n";
  std::string acc, loss;
  for (const auto& c : cs) {
    if (c.failed) continue;
    const std::string f = gp_quote(per_epoch_file(c));
    if (!acc.empty()) acc += ", \\\n     ", loss += ", \\\n     ";
    acc += f + " using 1:4 with linespoints pt 7 ps 1.3 lw 3 lc rgb '" + c.color + "' title " + gp_label(c.label);
    loss += f + " using 1:2 with linespoints pt 7 ps 1.3 lw 3 lc rgb '" + c.color + "' title " + gp_label(c.label);
  }
  s += "plot " + acc + "\n";
  s += "set key top right\nset title 'training loss per epoch' font ',15'\n" + epoch_loss_axis(cs, false, "training loss");
  s += "plot " + loss + "\nunset multiplot\n";
  p.script = s;
  return p;
}

// ---------------------------------------------------------------- time breakdown
PlotFiles breakdown_plot(const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "time_breakdown";
  p.title = "Where the time of an epoch goes (mean over ranks)";
  struct Seg {
    const char *key, *title, *color;
  };
  const Seg segs[] = {{"forward", "forward", kForwardColor},
                      {"backward", "backward", kBackwardColor},
                      {"allreduce_exposed", "all-reduce (exposed)", kAllreduceColor},
                      {"optimizer", "optimizer", kOptimizerColor},
                      {"data", "data", kDataColor},
                      {"other", "other", kOtherColor},
                      {"evaluation", "evaluation (test set)", kEvaluationColor}};
  constexpr int kSegs = 7;
  std::string d = "# seconds per epoch (mean over epochs and ranks), stacked bottom to top:\n#";
  for (const auto& sg : segs) d += std::string(" ") + sg.key;
  d += "\n# columns: index, then [low high] in seconds for each segment, then [low high] in % of the epoch, then total_s\n";
  double tmax = 0;
  std::vector<std::string> notes;
  for (size_t i = 0; i < cs.size(); ++i) {
    std::string note;
    if (!cs[i].failed && cs[i].metrics->contains("allreduce") && cs[i].processes > 1) {
      const json& a = (*cs[i].metrics)["allreduce"];
      char buf[96];
      std::snprintf(buf, sizeof buf, "%.1f ms (%.0f%%)", 1e3 * num(a, "busy_per_step_s", 0),
                    100 * num(a, "hidden_fraction", 0));
      note = buf;
    }
    notes.push_back(note);
    if (cs[i].failed || !cs[i].metrics->contains("time_per_epoch_s")) continue;
    const json& t = (*cs[i].metrics)["time_per_epoch_s"];
    double total = 0;
    for (const auto& sg : segs) total += num(t, sg.key, 0);
    tmax = std::max(tmax, total);
    std::string row = std::to_string(i), pct;
    double acc = 0;
    for (const auto& sg : segs) {
      const double v = num(t, sg.key, 0);
      row += "  " + g(acc) + " " + g(acc + v);
      pct += "  " + g(total > 0 ? 100 * acc / total : 0) + " " + g(total > 0 ? 100 * (acc + v) / total : 0);
      acc += v;
    }
    d += row + pct + "  " + g(total) + "\n";
  }
  p.data.push_back({"time_breakdown.dat", d});
  // Wider beyond four bars, so that their labels stay apart.
  const int width = 1400 + 250 * std::max(0, static_cast<int>(cs.size()) - 4);
  std::string s = gp_preamble("time_breakdown.png", width, 750, p.title);
  // Two panels placed by hand, the key to their right (a key is only as wide as its panel).
  s += "set multiplot title 'Where the time goes: one epoch, mean over ranks' font ',19'\n";
  s += "set tmargin at screen 0.87\nset bmargin at screen 0.16\n";
  s += "set key at screen 0.795, screen 0.87 left top vertical Left reverse invert samplen 1.5 spacing 1.4 box\n";
  s += "set xrange [-0.6:" + g(cs.size() - 0.4) + "]\n" + bar_xtics(cs) + "set grid noxtics ytics\nset xlabel ''\n";
  std::string comm;
  for (size_t i = 0; i < cs.size(); ++i)
    if (!notes[i].empty()) comm += "\n" + cs[i].label + ": " + notes[i];
  if (!comm.empty())
    s += "set label 20 " + gp_dquote(gp_text("gradient all-reduce per step\n(in brackets: the share hidden\nbehind backward)" + comm)) +
         " at screen 0.8, screen 0.38 left font ',12' tc rgb '#333333'\n";
  s += "set style fill solid 0.9 border lc rgb '#ffffff'\n";
  auto panel = [&](int base, bool labels) {
    std::string plot;
    for (int k = 0; k < kSegs; ++k) {
      const std::string l = "$" + std::to_string(base + 2 * k), h = "$" + std::to_string(base + 2 * k + 1);
      if (!plot.empty()) plot += ", \\\n     ";
      plot += "'time_breakdown.dat' using 1:((" + l + "+" + h + ")/2):(0.3):((" + h + "-" + l +
              ")/2) with boxxyerror lc rgb '" + segs[k].color + "' " +
              (labels ? std::string("title '") + segs[k].title + "'" : std::string("notitle"));
    }
    return plot;
  };
  s += "set lmargin at screen 0.075\nset rmargin at screen 0.385\n";
  s += "set title 'seconds per epoch' font ',15'\nset ylabel 'time per epoch (s)'\n";
  s += "set yrange [0:" + g(tmax > 0 ? tmax * 1.12 : 1) + "]\n";
  s += "plot " + panel(2, true) + ", \\\n     'time_breakdown.dat' using 1:" + std::to_string(2 + 4 * kSegs) +
       ":(sprintf('%.2f s', $" + std::to_string(2 + 4 * kSegs) + ")) with labels offset 0,0.8 font ',14' notitle\n";
  s += "set lmargin at screen 0.455\nset rmargin at screen 0.775\n";
  s += "set title 'share of the epoch' font ',15'\nset ylabel 'share of the epoch (%)'\nset yrange [0:100]\nunset key\n";
  std::string labels;
  for (int k = 0; k < kSegs; ++k) {
    const std::string l = "$" + std::to_string(2 + 2 * kSegs + 2 * k), h = "$" + std::to_string(2 + 2 * kSegs + 2 * k + 1);
    labels += ", \\\n     'time_breakdown.dat' using 1:((" + l + "+" + h + ")/2):((" + h + "-" + l +
              ") >= 4 ? sprintf('%.0f%%', " + h + "-" + l + ") : '') with labels font ',13' tc rgb '#1a1a1a' notitle";
  }
  s += "plot " + panel(2 + 2 * kSegs, false) + labels + "\nunset multiplot\n";
  p.script = s;
  return p;
}

// ---------------------------------------------------------------- scaling model
PlotFiles scaling_plot(const json& metrics, const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "scaling_model";
  p.title = "Scaling model: predicted speedup and efficiency for 1 to 1,024 ranks on 10, 25 and 100 Gbit/s networks";
  const json& sm = metrics["scaling_model"];
  const ModelParams mp = model_params_from_json(sm["params"]);
  std::vector<Network> nets;
  for (const auto& n : sm["networks"]) nets.push_back(network_from_json(n));
  const int pmax = 1024;

  std::string d = "# model predictions (see performance_metrics.json: scaling_model) at p = 1, 2, 3, 4, 6, 8, 12, ...\n# p  ideal";
  for (const auto& n : nets) d += "  speedup[" + n.name + "]  efficiency_%[" + n.name + "]";
  d += "\n";
  // p on a 1-1.5-2 series: the exact model jumps wherever ceil(M/p) just passes a
  // multiple of B (an almost empty extra step); these points show the trend.
  std::vector<int> ps;
  for (int q = 1; q <= pmax; q *= 2) {
    ps.push_back(q);
    if (q >= 2 && q * 3 / 2 <= pmax) ps.push_back(q * 3 / 2);
  }
  std::sort(ps.begin(), ps.end());
  for (int q : ps) {
    d += std::to_string(q) + "  " + std::to_string(q);
    for (const auto& n : nets) {
      const Prediction pr = predict(mp, q, n.alpha_s, n.beta_Bps);
      d += "  " + g(pr.speedup) + "  " + g(100 * pr.efficiency);
    }
    d += "\n";
  }
  p.data.push_back({"scaling_model.dat", d});
  const char* const net_colors[] = {"#2ca02c", "#1f77b4", "#9467bd", "#8c564b", "#17becf"};

  bool machine = sm.contains("this_machine") && sm["this_machine"].contains("predictions");
  if (machine) {
    std::string m = "# model of this machine (processes share its cores)\n# p  speedup  efficiency_%\n";
    for (const auto& q : sm["this_machine"]["predictions"])
      m += g(num(q, "p")) + "  " + g(num(q, "speedup")) + "  " + g(100 * num(q, "efficiency")) + "\n";
    p.data.push_back({"scaling_machine.dat", m});
  }
  // The model describes one backend: the measurements beside it are that backend's.
  const std::string measured_backend = sm.value("measured_backend", model_backend(backends(metrics)));
  const bool named = names_backends(metrics);
  std::string meas = "# measured on this machine" + (named ? ", " + backend_name(measured_backend) : std::string()) +
                     "\n# processes  speedup(median min max)  efficiency_%(median)\n";
  bool any = false;
  for (const auto& c : cs) {
    if (c.failed || !(c.backend.empty() || c.backend == measured_backend)) continue;
    const double sp = med(*c.metrics, "speedup");
    if (!std::isfinite(sp)) continue;
    any = true;
    meas += std::to_string(c.processes) + "  " + g(sp) + "  " + g(lo(*c.metrics, "speedup")) + "  " +
            g(hi(*c.metrics, "speedup")) + "  " + g(100 * med(*c.metrics, "efficiency")) + "\n";
  }
  p.data.push_back({"scaling_measured.dat", meas});

  std::string s = gp_preamble("scaling_model.png", 1400, 750, p.title);
  s += "set multiplot layout 1,2 title " +
       gp_quote("Scaling model: ring all-reduce (α-β) overlapped with backward, batch " + std::to_string(mp.batch) +
                " per rank") + " font ',19' margins 0.07,0.98,0.2,0.86 spacing 0.08,0\n";
  s += "set logscale x 2\nset xrange [1:" + std::to_string(pmax) + "]\n";
  s += "set xtics ('1' 1, '2' 2, '4' 4, '8' 8, '16' 16, '32' 32, '64' 64, '128' 128, '256' 256, '512' 512, '1024' 1024)\n";
  s += "set xlabel 'ranks p (one per core or node)'\n";
  const double one_step = mp.train_samples / mp.batch;
  if (one_step >= 2 && one_step <= pmax) {
    s += "set arrow 1 from first " + g(one_step) + ", graph 0 to first " + g(one_step) +
         ", graph 1 nohead dt 3 lw 1.5 lc rgb '#999999' back\n";
    s += "set label 1 " + gp_dquote("p = M/B:\none step\nper epoch") + " at first " + g(one_step) +
         ", graph 0.45 right offset -0.4,0 tc rgb '#888888' font ',12'\n";
  }
  auto curves = [&](int col_offset, bool titles) {
    std::string plot;
    for (size_t i = 0; i < nets.size(); ++i) {
      char t[160];
      std::snprintf(t, sizeof t, "%s (α = %.0f µs)", nets[i].name.c_str(), nets[i].alpha_s * 1e6);
      plot += ", \\\n     'scaling_model.dat' using 1:" + std::to_string(3 + 2 * i + col_offset) + " with linespoints pt 7 ps 0.6 lw 3 lc rgb '" +
              net_colors[i % 5] + "' " + (titles ? "title " + gp_label(t) : std::string("notitle"));
    }
    return plot;
  };
  // Left: speedup, log-log.
  s += "set title 'speedup' font ',15'\nset logscale y 2\nset yrange [0.5:" + std::to_string(pmax) + "]\n";
  s += "set ytics ('0.5' 0.5, '1' 1, '2' 2, '4' 4, '8' 8, '16' 16, '32' 32, '64' 64, '128' 128, '256' 256, '512' 512, '1024' 1024)\n";
  s += "set ylabel 'speedup over one process'\nset key bottom right font ',13' spacing 1.0\n";
  std::string plot = "x with lines dt 2 lw 2 lc rgb '#999999' title 'ideal'" + curves(0, true);
  if (machine) plot += ", \\\n     'scaling_machine.dat' using 1:2 with lines dt 3 lw 3 lc rgb '#ff7f0e' title " +
                       gp_label("this machine (" + std::to_string(cores(metrics)) + " cores, loopback)");
  if (any) plot += ", \\\n     'scaling_measured.dat' using 1:2:3:4 with yerrorbars pt 7 ps 1.8 lw 2 lc rgb '#000000' title " +
                    gp_label(named ? "measured here, " + backend_name(measured_backend) : "measured here");
  s += "plot " + plot + "\n";
  // Right: efficiency.
  char formula[512];
  std::snprintf(formula, sizeof formula,
                "T_epoch(p) = S(p) * (b(p) t_step + exposed(p)) + ceil(E/p) t_eval,   S(p) = ceil(ceil(M/p)/B),   "
                "T_ring(n,p) = 2(p-1) alpha + 2(p-1)/p n/beta,   n = %.2f MB in %zu bucket%s",
                mp.gradient_bytes() / 1e6, mp.buckets.size(), mp.buckets.size() == 1 ? "" : "s");
  s += "set title 'efficiency' font ',15'\nunset logscale y\nset yrange [0:105]\nset ytics autofreq\n";
  s += "set label 10 " + gp_quote(formula) + " at screen 0.5, screen 0.035 center noenhanced font ',12' tc rgb '#444444'\n";
  s += "set ylabel 'efficiency = speedup / p  (%)'\nunset key\nunset label 1\n";
  plot = "100 with lines dt 2 lw 2 lc rgb '#999999' notitle" + curves(1, false);
  if (machine) plot += ", \\\n     'scaling_machine.dat' using 1:3 with lines dt 3 lw 3 lc rgb '#ff7f0e' notitle";
  if (any) plot += ", \\\n     'scaling_measured.dat' using 1:5 with points pt 7 ps 1.8 lc rgb '#000000' notitle";
  s += "plot " + plot + "\n";
  s += "unset multiplot\n";
  p.script = s;
  return p;
}

}  // namespace

std::vector<double> moving_average(const std::vector<double>& v, int window) {
  std::vector<double> out(v.size());
  const int half = std::max(0, window / 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const size_t a = i >= static_cast<size_t>(half) ? i - half : 0, b = std::min(v.size() - 1, i + half);
    double sum = 0;
    int n = 0;
    for (size_t j = a; j <= b; ++j)
      if (std::isfinite(v[j])) sum += v[j], ++n;
    out[i] = n ? sum / n : NAN;
  }
  return out;
}

const std::vector<std::string>& plot_names() {
  static const std::vector<std::string> names = {"loss_curves",    "speedup",        "efficiency",
                                                 "training_comparison", "time_breakdown", "scaling_model"};
  return names;
}

std::vector<PlotFiles> make_plots(const json& metrics, const std::map<std::string, json>& results) {
  const auto cs = configurations(metrics, results);
  std::vector<PlotFiles> out;
  if (!any_results(cs)) return out;
  auto lc = loss_curves(metrics, cs);
  for (const auto& c : cs)
    if (!c.failed) lc.data.push_back({per_epoch_file(c), epochs_data(c)});
  out.push_back(std::move(lc));
  out.push_back(speedup_plot(metrics, cs));
  out.push_back(efficiency_plot(metrics, cs));
  out.push_back(comparison_plot(metrics, cs));
  out.push_back(breakdown_plot(cs));
  if (metrics.contains("scaling_model") && metrics["scaling_model"].value("status", "") == "ok")
    out.push_back(scaling_plot(metrics, cs));
  return out;
}

}  // namespace ddp::report
