// run_experiments --replot DIR: redraws an experiment's plots and report from
// its files alone (performance_metrics.json and the runs' results files), for
// example after installing gnuplot.
#pragma once
#include <string>

namespace ddp::experiments {

// Throws UserError, before writing anything, when DIR has no readable
// performance_metrics.json, or a run it records as successful has no
// results file that reads under the results schema (the message names the
// file and the field). Returns the exit status, as write_experiment.
int replot(const std::string& dir);

}  // namespace ddp::experiments
