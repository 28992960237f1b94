#include "report/experiment.h"

namespace ddp::report {

using nlohmann::json;

json performance_metrics(const json& experiment, const json& machine, const json& versions,
                         const std::vector<Configuration>& configs, const json& scaling_model) {
  json cs = json::array();
  int failed = 0, runs = 0;
  for (const auto& c : configs) {
    cs.push_back(configuration_metrics(c, baseline_of(configs, c)));
    for (const auto& r : c.runs) {
      ++runs;
      failed += r.ok ? 0 : 1;
    }
  }
  json m;
  m["format"] = "mnist-ddp performance metrics, version 1";
  m["experiment"] = experiment;
  m["status"] = failed ? "failed" : "ok";
  m["runs"] = runs;
  m["failed_runs"] = failed;
  m["machine"] = machine;
  m["versions"] = versions;
  m["definitions"] = {
      {"speedup", "T_serial / T_N with T = total_time_s (training and evaluation, all epochs); with repeats: "
                  "median = median(T_serial) / median(T_N), min = min(T_serial) / max(T_N), max = max(T_serial) / min(T_N)"},
      {"efficiency", "speedup / N"},
      {"throughput_samples_per_s", "training samples of all processes / training time"},
      {"exposed_comm_fraction", "all-reduce time not hidden behind backward (allreduce_wait, mean over ranks) / train_time_s"},
      {"allreduce.busy_per_step_s", "time the communication thread spent in all-reduce per step (mean over ranks)"},
      {"allreduce.hidden_fraction", "1 - exposed / busy: the share of the all-reduce that ran during backward"},
      {"allreduce.bytes_per_step", "bytes each rank handed to the communicator per optimizer step, as train_parallel "
                                   "counted them (its results' allreduce.bytes_per_step)"},
      {"oversubscribed", "processes x threads per process > cores: the processes take turns on the cores"},
      {"scaling", "weak scaling per step: the batch per process is fixed; N processes do 1/N of the steps of an epoch"}};
  m["configurations"] = cs;
  if (backends(m).size() > 1) {
    m["backend_comparison"] = backend_comparison(cs);
    m["definitions"]["backend_comparison"] =
        "per process count run on several backends: each backend's medians, the fastest and slowest by total_time_s, "
        "and time_ratio = T_slowest / T_fastest";
  }
  if (names_precisions(m)) {
    m["definitions"]["speedup"] =
        m["definitions"]["speedup"].get<std::string>() +
        "; T_serial is the serial run of the same precision, but for a serial run's speedup, which is against the fp32 "
        "serial run (its efficiency stays 1: it is the baseline of its precision)";
    if (const json cmp = precision_comparison(cs); !cmp.empty()) {
      m["precision_comparison"] = cmp;
      m["definitions"]["precision_comparison"] =
          "per run made in both fp32 and bf16: each precision's medians, time_ratio = T_fp32 / T_bf16, "
          "throughput_ratio = throughput_bf16 / throughput_fp32, accuracy_difference = accuracy_bf16 - accuracy_fp32";
    }
  }
  if (names_variants(m))
    m["definitions"]["variant"] =
        "run_experiments --variant NAME=FLAGS: the parallel runs made with FLAGS added to train_parallel's flags "
        "(experiment.config.variants); the backend and precision comparisons and the scaling model use the first "
        "variant's runs";
  std::vector<double> bg;
  for (const auto& c : configs)
    for (const auto& r : c.runs) bg.push_back(r.background_cores);
  m["measurement"] = {{"background_load_cores", to_json(summarize(bg))},
                      {"meaning", "CPU time other processes used during each run, in cores (from /proc/stat minus "
                                  "the runs' own CPU time): above about 0.25 the timings are disturbed"}};
  m["scaling_model"] = scaling_model;
  return m;
}

}  // namespace ddp::report
