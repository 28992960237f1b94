// Results files for the report tests: a test states the fields it is about;
// the schema's own JSON of a default RunResult / EpochRecord / LayerTimes
// fills in the other required fields, so that the file reads under the
// results schema (src/results/run_result.h).
#pragma once
#include <nlohmann/json.hpp>

#include "results/run_result.h"

namespace ddp::results::test {

// `partial` with every required field it lacks: top-level members, each
// entry of "epochs" and of "layer_times_s" completed member by member.
inline nlohmann::json complete_results(const nlohmann::json& partial) {
  nlohmann::json full = to_json(RunResult{});
  nlohmann::json p = partial;
  if (p.contains("epochs"))
    for (auto& e : p["epochs"]) {
      nlohmann::json base = to_json(EpochRecord{});
      base.merge_patch(e);
      e = base;
    }
  if (p.contains("layer_times_s"))
    for (auto& [name, t] : p["layer_times_s"].items()) {
      nlohmann::json base = {{"forward_s", 0.0}, {"backward_s", 0.0}};
      base.merge_patch(t);
      t = base;
    }
  full.merge_patch(p);
  return full;
}

// complete_results(partial), read through the schema.
inline RunResult results_from(const nlohmann::json& partial) {
  return run_result_from_json(complete_results(partial), "test fixture");
}

}  // namespace ddp::results::test
