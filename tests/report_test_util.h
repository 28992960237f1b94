// Helpers for the tests of src/report.
#pragma once
#include <string>

#include "report/experiment.h"

namespace report_test {

// The configuration c, run on `backend` ("gloo", "mpi").
inline ddp::report::Configuration on_backend(ddp::report::Configuration c, const std::string& backend) {
  c.backend = backend;
  return c;
}

}  // namespace report_test
