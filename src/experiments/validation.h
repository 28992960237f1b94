// The scaling model held against the measurement: for each parallel
// configuration, the model's speedup, all-reduce and exposed all-reduce per
// step beside the measured ones ("model_validation"), and the emulated
// network's block ("network") of performance_metrics.json.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "report/metrics.h"
#include "report/scaling_model.h"

namespace ddp::experiments {

// Adds "model_validation" to every parallel configuration of the model's
// backend in metrics["configurations"] that succeeded, and, when `bench`
// holds a measured "network", metrics["network"]. The model is
// metrics["scaling_model"] (its params); its communication is the
// emulated network's measured alpha and beta with --network, else the
// loopback benchmark's (never the training run's own all-reduce time, which
// would make the comparison circular). Errors are |predicted - measured| /
// measured per step. Does nothing without a calibrated model.
// The communication costs the model of p ranks is validated with, from an
// all-reduce benchmark's JSON (`bench`: the emulated network's with
// `network`, whose tbf bucket is then the burst): alpha and beta, the CPU
// per all-reduce (a line through the benchmark's CPU per call), and
// cpu_shared when `threads` compute threads fill a rank's share of `cores`.
report::CommCost comm_cost(const nlohmann::json& bench, int p, int cores, int threads, bool network);

void add_model_validation(nlohmann::json& metrics, const std::vector<report::Configuration>& configs,
                          const nlohmann::json& bench, int cores, int threads);

}  // namespace ddp::experiments
