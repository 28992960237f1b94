// The scaling model's predictions beside the measured speedups.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/gnuplot.h"
#include "report/metrics.h"
#include "report/plot_common.h"
#include "report/scaling_model.h"

namespace ddp::report::plot {

namespace {

constexpr int kMaxRanks = 1024;
const char* const kNetColors[] = {"#2ca02c", "#1f77b4", "#9467bd", "#8c564b", "#17becf"};

// scaling_model.dat: each network's predicted speedup and efficiency.
std::string model_data(const ModelParams& mp, const std::vector<Network>& nets) {
  std::string d = "# model predictions (see performance_metrics.json: scaling_model) at p = 1, 2, 3, 4, 6, 8, 12, ...\n# p  ideal";
  for (const auto& n : nets) d += "  speedup[" + n.name + "]  efficiency_%[" + n.name + "]";
  d += "\n";
  // p on a 1-1.5-2 series: the exact model jumps wherever ceil(M/p) just passes a
  // multiple of B (an almost empty extra step); these points show the trend.
  std::vector<int> ps;
  for (int q = 1; q <= kMaxRanks; q *= 2) {
    ps.push_back(q);
    if (q >= 2 && q * 3 / 2 <= kMaxRanks) ps.push_back(q * 3 / 2);
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
  return d;
}

// scaling_measured.dat: the measured speedups of `backend` in `precision` (and
// the serial run of that precision); `any` says whether there is one.
// `variant`: the first variant's runs (the scaling model's; run_experiments --variant).
std::string measured_data(const std::vector<Cfg>& cs, const std::string& backend, const std::string& precision,
                          const std::string& variant, const std::string& name, bool& any) {
  std::string meas = "# measured on this machine" + (name.empty() ? std::string() : ", " + name) +
                     "\n# processes  speedup(median min max)  efficiency_%(median)\n";
  any = false;
  for (const auto& c : cs) {
    if (c.failed || !(c.backend.empty() || c.backend == backend) || c.precision != precision ||
        (!c.backend.empty() && c.variant != variant))
      continue;
    const double sp = med(*c.metrics, "speedup");
    if (!std::isfinite(sp)) continue;
    any = true;
    meas += std::to_string(c.processes) + "  " + g(sp) + "  " + g(lo(*c.metrics, "speedup")) + "  " +
            g(hi(*c.metrics, "speedup")) + "  " + g(100 * med(*c.metrics, "efficiency")) + "\n";
  }
  return meas;
}

// One line per network from scaling_model.dat's column pairs (offset 0: speedup, 1: efficiency).
std::string network_curves(const std::vector<Network>& nets, int col_offset, bool titles) {
  std::string plot;
  for (size_t i = 0; i < nets.size(); ++i) {
    char t[160];
    std::snprintf(t, sizeof t, "%s (α = %.0f µs)", nets[i].name.c_str(), nets[i].alpha_s * 1e6);
    plot += ", \\\n     'scaling_model.dat' using 1:" + std::to_string(3 + 2 * i + col_offset) + " with linespoints pt 7 ps 0.6 lw 3 lc rgb '" +
            kNetColors[i % 5] + "' " + (titles ? "title " + gp_label(t) : std::string("notitle"));
  }
  return plot;
}

// The script's shared x axis: ranks on a log scale, and where one step per epoch begins.
std::string rank_axis(const ModelParams& mp) {
  std::string s = "set logscale x 2\nset xrange [1:" + std::to_string(kMaxRanks) + "]\n";
  s += "set xtics ('1' 1, '2' 2, '4' 4, '8' 8, '16' 16, '32' 32, '64' 64, '128' 128, '256' 256, '512' 512, '1024' 1024)\n";
  s += "set xlabel 'ranks p (one per core or node)'\n";
  const double one_step = mp.train_samples / mp.batch;
  if (one_step >= 2 && one_step <= kMaxRanks) {
    s += "set arrow 1 from first " + g(one_step) + ", graph 0 to first " + g(one_step) +
         ", graph 1 nohead dt 3 lw 1.5 lc rgb '#999999' back\n";
    s += "set label 1 " + gp_dquote("p = M/B:\none step\nper epoch") + " at first " + g(one_step) +
         ", graph 0.45 right offset -0.4,0 tc rgb '#888888' font ',12'\n";
  }
  return s;
}

}  // namespace

PlotFiles scaling_plot(const json& metrics, const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "scaling_model";
  p.title = "Scaling model: predicted speedup and efficiency for 1 to 1,024 ranks on 10, 25 and 100 Gbit/s networks";
  const json& sm = metrics["scaling_model"];
  const ModelParams mp = model_params_from_json(sm["params"]);
  std::vector<Network> nets;
  for (const auto& n : sm["networks"]) nets.push_back(network_from_json(n));
  p.data.push_back({"scaling_model.dat", model_data(mp, nets)});

  bool machine = sm.contains("this_machine") && sm["this_machine"].contains("predictions");
  if (machine) {
    std::string m = "# model of this machine (processes share its cores)\n# p  speedup  efficiency_%\n";
    for (const auto& q : sm["this_machine"]["predictions"])
      m += g(num(q, "p")) + "  " + g(num(q, "speedup")) + "  " + g(100 * num(q, "efficiency")) + "\n";
    p.data.push_back({"scaling_machine.dat", m});
  }
  // The model describes one backend: the measurements beside it are that backend's.
  const std::string measured_backend = sm.value("measured_backend", model_backend(backends(metrics)));
  const std::string measured_precision = sm.value("measured_precision", model_precision(precisions(metrics)));
  std::string named = names_backends(metrics) ? backend_name(measured_backend) : "";
  if (names_precisions(metrics)) named += (named.empty() ? "" : ", ") + measured_precision;
  bool any = false;
  p.data.push_back({"scaling_measured.dat", measured_data(cs, measured_backend, measured_precision,
                                                        variants(metrics).empty() ? "" : variants(metrics).front(),
                                                        named, any)});

  std::string s = gp_preamble(image("scaling_model"), 1400, 750, p.title);
  s += "set multiplot layout 1,2 title " +
       gp_quote("Scaling model: ring all-reduce (α-β) overlapped with backward, batch " + std::to_string(mp.batch) +
                " per rank") + " font ',19' margins 0.07,0.98,0.2,0.86 spacing 0.08,0\n";
  s += rank_axis(mp);
  // Left: speedup, log-log.
  s += "set title 'speedup' font ',15'\nset logscale y 2\nset yrange [0.5:" + std::to_string(kMaxRanks) + "]\n";
  s += "set ytics ('0.5' 0.5, '1' 1, '2' 2, '4' 4, '8' 8, '16' 16, '32' 32, '64' 64, '128' 128, '256' 256, '512' 512, '1024' 1024)\n";
  s += "set ylabel 'speedup over one process'\nset key top left font ',12' spacing 0.95\n";
  std::string plot = "x with lines dt 2 lw 2 lc rgb '#999999' title 'ideal'" + network_curves(nets, 0, true);
  if (machine) plot += ", \\\n     'scaling_machine.dat' using 1:2 with lines dt 3 lw 3 lc rgb '#ff7f0e' title " +
                       gp_label(sm["this_machine"].contains("network")
                                    ? "emulated " + sm["this_machine"].value("network", "") + " network, 1 rank per node"
                                    : "this machine (" + std::to_string(cores(metrics)) + " cores, loopback)");
  if (any) plot += ", \\\n     'scaling_measured.dat' using 1:2:3:4 with yerrorbars pt 7 ps 1.8 lw 2 lc rgb '#000000' title " +
                    gp_label(named.empty() ? "measured here" : "measured here, " + named);
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
  plot = "100 with lines dt 2 lw 2 lc rgb '#999999' notitle" + network_curves(nets, 1, false);
  if (machine) plot += ", \\\n     'scaling_machine.dat' using 1:3 with lines dt 3 lw 3 lc rgb '#ff7f0e' notitle";
  if (any) plot += ", \\\n     'scaling_measured.dat' using 1:5 with points pt 7 ps 1.8 lc rgb '#000000' notitle";
  s += "plot " + plot + "\n";
  s += "unset multiplot\n";
  p.script = s;
  return p;
}

}  // namespace ddp::report::plot
