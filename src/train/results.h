// What a training run measured: the results file's schema
// (src/results/run_result.h), and what only the trainer knows when it
// writes one (the program, this machine, the libraries' versions).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "results/run_result.h"
#include "train/config.h"

namespace ddp::train {

using results::EpochRecord;
using results::epoch_from_json;
using results::kPhaseTimesFields;
using results::PhaseTimes;
using results::RunResult;
using results::to_json;

// The configuration as results files and checkpoints record it (the
// enums as their names).
results::RunConfig config_record(const TrainConfig& c);
nlohmann::json config_json(const TrainConfig& c);

// The machine (sys/machine.h) as results record it: cores, cpu_model,
// hostname, memory_gib.
nlohmann::json machine_json();
// {"compiler": ...}; to_json(RunResult) adds the libraries the trainer links.
nlohmann::json versions_json();

// The results file of a run of `program`: `r` with the program, the
// backend's name ("local" for a world of one), this machine's facts and the
// libraries' versions filled in.
nlohmann::json to_json(const RunResult& r, const std::string& program);

}  // namespace ddp::train
