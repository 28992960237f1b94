// timeline.png: what every thread of every rank did during consecutive
// training steps, drawn from a --trace file (train/trace_file.h; fields in
// docs/file-formats.md). One horizontal lane per rank and thread (rank 0
// at the top, each rank's compute lane above its communication lane), time
// running to the right from the first step's start, each event a bar in
// its part's colour (report/palette.h): forward, backward, the all-reduce
// (paler while it waits for a later rank), the optimizer. So whether the
// all-reduce overlaps backward, and who waits for whom, shows at a glance.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "report/plots.h"

namespace ddp::report {

// The figure of the first `steps` traced steps of rank 0 (and the same
// steps of the other ranks): timeline.gp and timeline.dat, to run in an
// experiment's kPlotDir like the other plots (the image goes one level up:
// ../timeline.png). Nothing when the trace holds fewer steps. Throws
// nlohmann::json::exception when `trace` is not a trace document.
std::optional<PlotFiles> make_timeline(const nlohmann::json& trace, int steps = 2);

// report.md's section on timeline.png: the image and how to read it, from
// performance_metrics.json's "timeline" block ({"title", "trace_file",
// "configuration", "label"}); "" without that block.
std::string timeline_markdown(const nlohmann::json& metrics);

}  // namespace ddp::report
