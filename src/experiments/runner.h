// Running the suite's trainers one after the other: each as a child process
// with its log, its lines and an ETA on the terminal, its results file read
// through the results schema.
#pragma once
#include <string>
#include <vector>

#include "experiments/schedule.h"
#include "experiments/suite.h"

namespace ddp::experiments {

// The command line of one run of `c`: its program, the suite's flags, and for
// a parallel run its variant's flags last; `results`: its --save-results file.
std::vector<std::string> trainer_argv(const Suite& s, const report::Configuration& c, const std::string& results);

// Runs every planned run and appends its record to its configuration (a run
// cut short by a signal is left out). Returns false when a signal stopped
// the suite.
bool run_all(Suite& s, const std::vector<PlannedRun>& plan);

}  // namespace ddp::experiments
