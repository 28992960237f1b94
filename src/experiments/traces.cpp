#include "experiments/traces.h"

#include <algorithm>
#include <tuple>

#include "experiments/text.h"
#include "report/timeline.h"

namespace ddp::experiments {

using nlohmann::json;

std::string trace_file_for(const report::Configuration& c, int repeat) {
  return c.program == "train_parallel" && repeat == 1 ? "trace_" + c.name + ".json" : "";
}

namespace {

// The traced run timeline.png shows: the fewest ranks, but 2 before 1 (one
// rank has nothing to overlap); the first backend at that count.
const report::RunRecord* timeline_run(const Suite& s, const report::Configuration** config) {
  const report::RunRecord* best = nullptr;
  for (const auto& c : s.configs)
    for (const auto& r : c.runs) {
      if (r.trace_file.empty()) continue;
      const auto key = [](int n) { return std::make_tuple(n < 2, n); };
      if (!best || key(c.processes) < key((*config)->processes)) best = &r, *config = &c;
    }
  return best;
}

}  // namespace

Timeline experiment_timeline(const Suite& s) {
  Timeline t;
  const report::Configuration* c = nullptr;
  const report::RunRecord* r = timeline_run(s, &c);
  if (!r) return t;
  t.info = {{"configuration", c->name},
            {"label", c->backend.empty() ? c->label : c->label + ", " + c->backend},
            {"trace_file", r->trace_file},
            {"image", "timeline.png"}};
  const std::string text = read_text(s.dir + "/" + r->trace_file);
  if (text.empty()) {
    t.problem = "no timeline.png: " + r->trace_file + " is missing or empty (train_parallel --trace wrote it)";
    return t;
  }
  try {
    const json trace = json::parse(text);
    t.plot = report::make_timeline(trace, 2);
    if (!t.plot) t.plot = report::make_timeline(trace, 1);  // a run of one step
    if (!t.plot) t.problem = "no timeline.png: " + r->trace_file + " holds no training step";
  } catch (const std::exception& e) {
    t.problem = "no timeline.png: cannot read " + r->trace_file + ": " + e.what();
  }
  if (t.plot) t.info["title"] = t.plot->title;
  return t;
}

}  // namespace ddp::experiments
