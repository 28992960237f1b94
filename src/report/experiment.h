// performance_metrics.json and report.md: the experiment's summary, from
// its configurations' runs, the machine and the scaling model.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "report/metrics.h"

namespace ddp::report {

// experiment: {"directory", "started", "finished", "command", "config": {...}};
// configs: the serial baseline of each precision first (program
// train_serial), then each N; each is measured against baseline_of(configs, c).
nlohmann::json performance_metrics(const nlohmann::json& experiment, const nlohmann::json& machine,
                                   const nlohmann::json& versions, const std::vector<Configuration>& configs,
                                   const nlohmann::json& scaling_model);

// report.md: the table, the definitions, the images that were drawn
// (`plots`: names such as "speedup"), the scaling model's numbers; `notes`
// go under the table (e.g. why there are no plots).
std::string report_markdown(const nlohmann::json& metrics, const std::vector<std::string>& plots,
                            const std::vector<std::string>& notes);

}  // namespace ddp::report
