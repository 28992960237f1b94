#include "report/plots.h"

#include <algorithm>
#include <cmath>

#include "report/metrics.h"
#include "report/plot_common.h"

namespace ddp::report {

using nlohmann::json;
using results::RunResult;

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

std::vector<PlotFiles> make_plots(const json& metrics, const std::map<std::string, RunResult>& results) {
  using namespace plot;
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
  if (names_variants(metrics)) out.push_back(variants_plot(metrics, cs));
  return out;
}

}  // namespace ddp::report
