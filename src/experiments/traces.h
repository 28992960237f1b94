// The traces of run_experiments: the first run of each parallel
// configuration records a few steps with train_parallel --trace (its default
// window: 4 steps from step 10, or the last 4 of a shorter run; see
// docs/tracing.md) into trace_<configuration>.json, and timeline.png draws
// two of those steps from the run with the fewest ranks (2 when there is
// such a run), so that the overlap of all-reduce and backward shows.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "experiments/suite.h"
#include "report/plots.h"

namespace ddp::experiments {

// The trace file a run records, relative to the experiment directory:
// "trace_parallel_2p.json" for repeat 1 of a parallel configuration; "" for
// the serial run and later repeats (one trace per configuration is what a
// reader looks at, and the file is written during the run it times).
std::string trace_file_for(const report::Configuration& c, int repeat);

struct Timeline {
  // performance_metrics.json's "timeline": {"configuration", "label",
  // "trace_file", "image", "title"}; null when no run recorded a trace.
  nlohmann::json info;
  std::optional<report::PlotFiles> plot;  // timeline.gp and its data, when the trace could be read
  std::string problem;                    // why there is no plot although a trace was recorded; "" otherwise
};

// From the trace files the configurations' runs recorded (RunRecord::trace_file, under s.dir).
Timeline experiment_timeline(const Suite& s);

}  // namespace ddp::experiments
