// timeline.png from a --trace file: the first two steps of every rank, one
// lane per rank and thread, the report's colours, and (with gnuplot) a PNG.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "report/gnuplot.h"
#include "report/palette.h"
#include "report/timeline.h"

using namespace ddp::report;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json x(const std::string& name, const std::string& cat, int pid, int tid, double ts, double dur, int step) {
  return {{"name", name}, {"cat", cat}, {"ph", "X"}, {"pid", pid}, {"tid", tid},
          {"ts", ts},     {"dur", dur}, {"args", {{"step", step}}}};
}

json meta(const std::string& what, int pid, int tid, const std::string& name) {
  json m = {{"name", what}, {"ph", "M"}, {"pid", pid}, {"args", {{"name", name}}}};
  if (tid) m["tid"] = tid;
  return m;
}

// Two ranks, three steps of 1000 us each (rank 1 starts 100 us later):
// forward, backward (during which the all-reduce runs on the communication
// lane, rank 0's first waiting for rank 1), a wait and the optimizer.
json two_rank_trace() {
  json ev = json::array();
  for (int pid : {1, 2}) {
    ev.push_back(meta("process_name", pid, 0, "rank " + std::to_string(pid - 1)));
    ev.push_back(meta("thread_name", pid, 1, "compute"));
    ev.push_back(meta("thread_name", pid, 2, "communication"));
    ev.push_back(meta("thread_name", pid, 3, "steps"));
    for (int s = 10; s < 13; ++s) {
      const double t = (s - 10) * 1000.0 + (pid == 2 ? 100 : 0);
      ev.push_back(x("step " + std::to_string(s), "step", pid, 3, t, 1000, s));
      ev.push_back(x("forward conv1", "forward", pid, 1, t, 400, s));
      ev.push_back(x("backward conv1", "backward", pid, 1, t + 400, 400, s));
      ev.push_back(x("wait bucket 0", "wait", pid, 1, t + 800, 100, s));
      ev.push_back(x("optimizer bucket 0", "optimizer", pid, 1, t + 900, 100, s));
      ev.push_back(x("all-reduce bucket 0", "allreduce", pid, 2, t + 500, 350, s));
      if (pid == 1) ev.push_back(x("wait for rank 1", "later_rank", pid, 2, t + 500, 100, s));
      ev.push_back(x("transfer", "transfer", pid, 2, t + (pid == 1 ? 600 : 500), pid == 1 ? 250 : 350, s));
    }
  }
  return {{"traceEvents", ev},
          {"otherData", {{"world_size", 2}, {"backend", "gloo"}, {"overlap", "thread"}}}};
}

// The data lines of data set `index` of a gnuplot data file.
std::vector<std::vector<double>> rows(const std::string& data, int index) {
  std::vector<std::vector<double>> out;
  std::istringstream in(data);
  std::string line;
  int set = 0, blank = 0;
  while (std::getline(in, line)) {
    if (line.empty()) {
      if (++blank == 2) ++set;
      continue;
    }
    blank = 0;
    if (line[0] == '#' || set != index) continue;
    std::istringstream l(line);
    std::vector<double> v;
    for (double d; l >> d;) v.push_back(d);
    out.push_back(v);
  }
  return out;
}

}  // namespace

TEST(Timeline, TwoStepsOfEveryRankAndThread) {
  const auto p = make_timeline(two_rank_trace());
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->name, "timeline");
  ASSERT_EQ(p->data.size(), 1u);
  const std::string& data = p->data[0].second;
  const std::string& script = p->script;
  // One lane per rank and thread, rank 0's compute lane at the top.
  EXPECT_NE(script.find("\"rank 0\\ncompute\" 3"), std::string::npos) << script;
  EXPECT_NE(script.find("\"rank 0\\ncommunication\" 2"), std::string::npos);
  EXPECT_NE(script.find("\"rank 1\\ncompute\" 1"), std::string::npos);
  EXPECT_NE(script.find("\"rank 1\\ncommunication\" 0"), std::string::npos);
  // The report's colours for the parts of a step.
  for (const char* c : {kForwardColor, kBackwardColor, kAllreduceColor, kOptimizerColor})
    EXPECT_NE(script.find(c), std::string::npos) << c;
  // Steps 10 and 11 only: from rank 0's start of step 10 (0 ms) to rank 1's
  // end of step 11 (2.1 ms).
  EXPECT_NE(script.find("set xrange [0:2.1]"), std::string::npos) << script;
  EXPECT_NE(script.find("step 11"), std::string::npos);
  EXPECT_EQ(script.find("step 12"), std::string::npos);
  // Series in order: forward, backward, wait, later_rank, transfer, optimizer
  // (the all-reduce itself is drawn as its two parts).
  const auto forward = rows(data, 0);
  ASSERT_EQ(forward.size(), 4u);  // 2 steps x 2 ranks
  for (const auto& r : forward) {
    ASSERT_EQ(r.size(), 6u);
    EXPECT_NEAR(r[3] - r[2], 0.4, 1e-9);  // 400 us, in ms
    EXPECT_GE(r[2], 0);
    EXPECT_LE(r[3], 2.1 + 1e-9);
  }
  EXPECT_EQ(rows(data, 3).size(), 2u);  // rank 0 waited for rank 1 in both steps
  EXPECT_EQ(rows(data, 4).size(), 4u);
  EXPECT_EQ(rows(data, 6).size(), 0u);  // no seventh series
  EXPECT_EQ(script.find("title 'all-reduce'"), std::string::npos);
}

TEST(Timeline, NothingWithoutTwoSteps) {
  json t = two_rank_trace();
  json kept = json::array();
  for (const auto& e : t["traceEvents"])
    if (e["ph"] == "M" || e["args"]["step"] == 10) kept.push_back(e);
  t["traceEvents"] = kept;
  EXPECT_FALSE(make_timeline(t).has_value());
  EXPECT_TRUE(make_timeline(t, 1).has_value());
  EXPECT_THROW(make_timeline(json::object()), json::exception);
}

TEST(Timeline, GnuplotDrawsIt) {
  const std::string gnuplot = find_gnuplot();
  if (!check_gnuplot(gnuplot).empty()) GTEST_SKIP() << "gnuplot with pngcairo is not installed";
  std::string dir = (fs::temp_directory_path() / "timeline-XXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const auto p = make_timeline(two_rank_trace());
  ASSERT_TRUE(p.has_value());
  // As in an experiment directory: the script and data in plots/, the image one level up.
  const std::string plots = dir + "/" + kPlotDir;
  fs::create_directories(plots);
  for (const auto& [file, text] : p->data) std::ofstream(plots + "/" + file) << text;
  std::ofstream(plots + "/timeline.gp") << p->script;
  const auto run = run_gnuplot(gnuplot, plots, "timeline.gp");
  EXPECT_TRUE(run.ok) << run.error;
  EXPECT_TRUE(run.error.empty()) << run.error;
  EXPECT_GT(fs::file_size(dir + "/timeline.png"), 5000u);
  fs::remove_all(dir);
}

TEST(Timeline, ReportSectionNamesTheTraceAndSaysHowToReadIt) {
  EXPECT_EQ(timeline_markdown(json::object()), "");  // no traced run: no section
  const json m = {{"timeline",
                   {{"title", "Steps 1 and 2 of 2 ranks, thread by thread"},
                    {"trace_file", "trace_parallel_2p.json"},
                    {"label", "2 processes, gloo"}}}};
  const std::string md = timeline_markdown(m);
  EXPECT_NE(md.find("![Steps 1 and 2 of 2 ranks, thread by thread](timeline.png)"), std::string::npos) << md;
  EXPECT_NE(md.find("`trace_parallel_2p.json` (2 processes, gloo)"), std::string::npos) << md;
  EXPECT_NE(md.find("ui.perfetto.dev"), std::string::npos) << md;
}
