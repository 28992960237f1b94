// The end of an experiment (and all of --replot): the results copies,
// performance_metrics.json, the plots (scripts and data in plots/, images at
// the top), report.md, and the summary on the terminal.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "experiments/suite.h"

namespace ddp::experiments {

// experiment: the "experiment" block (directory, times, command, config);
// bench: the all-reduce benchmark's block; gnuplot: its path ("" when
// missing) and gnuplot_problem: why it cannot draw ("" when it can);
// interrupted: a signal stopped the runs (no plots then). Returns the exit
// status: 0; 1 when a run or a plot failed or gnuplot is missing; 128 +
// signal when interrupted.
int write_experiment(const Suite& s, const nlohmann::json& experiment, const nlohmann::json& bench,
                     const std::string& gnuplot, const std::string& gnuplot_problem, bool interrupted);

}  // namespace ddp::experiments
