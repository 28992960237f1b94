// The "scaling_model" section of performance_metrics.json: the model of
// report/scaling_model.h calibrated with this experiment's serial run, the
// all-reduce benchmark and the all-reduce time of the smallest parallel run,
// and compared with the measured speedups.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "report/metrics.h"

namespace ddp::experiments {

// configs: the experiment's configurations (the serial one calibrates);
// bench: run_allreduce_benchmark's block; metrics: performance_metrics.json
// so far (its measured speedups); cores and threads per process of this
// machine. {"status": "unavailable", "reason"} when the serial run failed or
// lacks what calibration needs.
nlohmann::json scaling_model(const std::vector<report::Configuration>& configs, const nlohmann::json& bench,
                             const nlohmann::json& metrics, int cores, int threads);

}  // namespace ddp::experiments
