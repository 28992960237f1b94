#include "experiments/replot.h"

#include <filesystem>

#include "common/error.h"
#include "experiments/suite.h"
#include "experiments/text.h"
#include "experiments/write_report.h"
#include "report/gnuplot.h"
#include "sys/machine.h"
#include "results/json_reader.h"
#include "results/run_result.h"

namespace ddp::experiments {

using nlohmann::json;

namespace {

json read_metrics(const std::string& path) {
  const char* hint = "give --replot an experiment directory made by run_experiments";
  if (!std::filesystem::exists(path)) throw UserError(path + " does not exist", hint);
  try {
    return json::parse(read_text(path));
  } catch (const std::exception& e) {
    throw UserError("cannot read " + path + ": " + e.what(), hint);
  }
}

// One entry of a configuration's "runs"; a successful run's results file is read too.
report::RunRecord run_from(const json& r, const std::string& dir) {
  report::RunRecord rr;
  rr.repeat = r.value("repeat", 1);
  rr.exit_status = r.value("exit_status", -1);
  rr.log_file = r.value("log_file", "");
  rr.trace_file = r.value("trace_file", "");
  rr.wall_s = r.value("wall_s", 0.0);
  rr.error = r.value("error", "");
  rr.background_cores = results::number_or(r, "background_load_cores", rr.background_cores);
  if (r.value("status", "") != "ok" || !r["results_file"].is_string()) return rr;
  rr.results_file = r["results_file"];
  try {
    rr.results = results::read_results_file(dir + "/" + rr.results_file);
  } catch (const UserError& e) {
    // Redrawing without it would turn a run that succeeded into a failed one
    // in performance_metrics.json: refuse, and leave the directory as it is.
    throw UserError(std::string(e.what()) + " (the results of a run that performance_metrics.json records as successful)",
                    "--replot redraws from the results file of every successful run, beside performance_metrics.json: "
                    "restore it, or run the suite again");
  }
  rr.ok = true;
  return rr;
}

report::Configuration configuration_from(const json& c, const std::string& dir) {
  report::Configuration rc;
  rc.name = c.value("name", "");
  rc.label = c.value("label", rc.name);
  rc.program = c.value("program", "");
  rc.backend = report::backend_of(c);  // gloo for a directory written before there was a choice
  rc.processes = c.value("processes", 1);
  rc.precision = report::precision_of(c);  // fp32 for a directory written before there was a choice
  rc.variant = report::variant_of(c);
  rc.results_file = rc.name + "_results.json";
  for (const auto& r : c.value("runs", json::array())) rc.runs.push_back(run_from(r, dir));
  return rc;
}

}  // namespace

int replot(const std::string& dir) {
  const json m = read_metrics(dir + "/performance_metrics.json");
  Suite s;
  s.dir = dir;
  s.cores = m.value("machine", json::object()).value("cores", sys::online_cores());
  const json cfg = m.value("experiment", json::object()).value("config", json::object());
  s.o.train.threads = cfg.value("threads", 1);
  s.o.repeats = cfg.value("repeats", 1);
  for (const auto& c : m.value("configurations", json::array())) s.configs.push_back(configuration_from(c, dir));
  const json bench = m.value("scaling_model", json::object())
                         .value("calibration", json::object())
                         .value("allreduce_benchmark", json{{"status", "missing"}});
  const std::string gnuplot = report::find_gnuplot();
  return write_experiment(s, m.value("experiment", json::object()), bench, gnuplot, report::check_gnuplot(gnuplot),
                          false);
}

}  // namespace ddp::experiments
