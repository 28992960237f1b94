// The short summary printed at the end of a run.
#pragma once
#include <ostream>

#include "train/results.h"

namespace ddp::train {

void print_summary(std::ostream& out, const RunResult& r);

}  // namespace ddp::train
