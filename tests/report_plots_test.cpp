// The gnuplot scripts and data files of run_experiments, and (when gnuplot
// is installed) the PNGs they draw.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "report/experiment.h"
#include "report/gnuplot.h"
#include "report/plots.h"
#include "report/scaling_model.h"
#include "results_test_util.h"
#include "test_util.h"
#include "report_test_util.h"

using namespace ddp::report;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using report_test::on_backend;

ddp::results::RunResult results(int world, double total, int epochs = 3) {
  json e = json::array();
  for (int i = 0; i < epochs; ++i)
    e.push_back({{"epoch", i + 1},
                 {"loss", 0.8 / (i + 1)},
                 {"test_loss", 0.5 / (i + 1)},
                 {"test_accuracy", 0.9 + 0.02 * i},
                 {"train_time_s", 0.8 * total / epochs},
                 {"eval_time_s", 0.2 * total / epochs},
                 {"time_s", total / epochs},
                 {"samples_per_s", 1000.0 * world},
                 {"allreduce_busy_s", world > 1 ? 0.3 : 0.0},
                 {"time_breakdown_s",
                  {{"data", 0.01}, {"forward", 0.3 * total / epochs}, {"backward", 0.4 * total / epochs},
                   {"allreduce_wait", world > 1 ? 0.1 : 0.0}, {"optimizer", 0.01}, {"other", 0.02}}}});
  json steps = json::array();
  const int spe = 40 / world;
  for (int i = 0; i < spe * epochs; ++i) steps.push_back(2.3 * std::exp(-0.05 * i * world) + 0.05);
  return ddp::results::test::results_from({{"world_size", world},
          {"threads_per_process", 1},
          {"oversubscribed", world > 2},
          {"config", {{"batch_size", 64}}},
          {"steps_per_epoch", spe},
          {"samples_per_epoch", 2560},
          {"test_samples", 10000},
          {"epochs", e},
          {"step_losses", steps},
          {"layer_times_s", {{"conv1", {{"backward_s", 1.0}}}, {"fc1", {{"backward_s", 0.5}}}}},
          {"total_time_s", total},
          {"train_time_s", 0.8 * total},
          {"throughput_samples_per_s", 2560.0 * epochs / (0.8 * total)},
          {"final_test_accuracy", 0.94}});
}

Configuration config(const std::string& name, const std::string& label, int p, const ddp::results::RunResult& r) {
  Configuration c;
  c.name = name;
  c.label = label;
  c.processes = p;
  c.results_file = name + "_results.json";
  RunRecord run;
  run.ok = true;
  run.exit_status = 0;
  run.results = r;
  run.results_file = c.results_file;
  c.runs.push_back(run);
  return c;
}

struct Fixture {
  json metrics;
  std::map<std::string, ddp::results::RunResult> results;
};

// mpi_overlap: what --overlap chose for the MPI runs ("thread" or "none").
Fixture fixture(bool with_model = true, bool failed_4p = false, bool with_mpi = false,
                const std::string& mpi_overlap = "thread") {
  std::vector<Configuration> cs = {config("serial", "serial", 1, results(1, 30)),
                                   on_backend(config("parallel_2p", "2 processes", 2, results(2, 18)), "gloo"),
                                   on_backend(config("parallel_4p", "4 processes", 4, results(4, 20)), "gloo")};
  if (with_mpi) {
    cs.insert(cs.begin() + 2, on_backend(config("parallel_2p_mpi", "2 processes", 2, results(2, 15)), "mpi"));
    cs.push_back(on_backend(config("parallel_4p_mpi", "4 processes", 4, results(4, 16)), "mpi"));
  }
  for (auto& c : cs)  // what --overlap chose, as a parallel run records it
    if (c.processes > 1) c.runs[0].results.overlap = c.backend == "mpi" ? mpi_overlap : "thread";
  if (failed_4p) {
    cs[2].runs[0].ok = false;
    cs[2].runs[0].exit_status = 1;
    cs[2].runs[0].results = {};
  }
  json model = {{"status", "unavailable"}};
  if (with_model) {
    ModelParams mp = calibrate(results(1, 30), {"conv1", "fc1"}, {{"conv1", 0, 1000}, {"fc1", 1000, 300000}},
                               {{1000, 301000}, {0, 1000}});
    MachineComm mc{50e-6, 4e8, 2, 1, 8};
    model = model_json(mp, default_networks(), &mc, {{2, 30.0 / 18}, {4, 1.5}});
  }
  Fixture f;
  f.metrics = performance_metrics({{"directory", "/tmp/x"}, {"config", {{"repeats", 1}, {"batch_size", 64}, {"threads", 1}}}},
                                  {{"cores", 2}}, json::object(), cs, model);
  for (const auto& c : cs)
    if (c.any_ok()) f.results[c.name] = c.runs[0].results;
  return f;
}

using test_util::TempDir;

// Width and height from a PNG's IHDR chunk; {0, 0} if the file is no PNG.
std::pair<uint32_t, uint32_t> png_size(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char h[24] = {};
  in.read(reinterpret_cast<char*>(h), 24);
  const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (!in || std::memcmp(h, sig, 8) != 0 || std::memcmp(h + 12, "IHDR", 4) != 0) return {0, 0};
  auto be = [&](int o) { return (uint32_t(h[o]) << 24) | (uint32_t(h[o + 1]) << 16) | (uint32_t(h[o + 2]) << 8) | h[o + 3]; };
  return {be(16), be(20)};
}

}  // namespace

TEST(ReportGnuplot, StringsAreQuotedSafely) {
  EXPECT_EQ(gp_quote("it's"), "'it''s'");
  EXPECT_EQ(gp_quote("a\nb"), "'a b'");
  EXPECT_EQ(gp_text("parallel_2p^x{y}"), "parallel\\_2p\\^x\\{y\\}");
  EXPECT_EQ(gp_label("a_b"), "'a\\_b'");
  EXPECT_EQ(gp_dquote("two\nlines \"q\" \\"), "\"two\\nlines \\\"q\\\" \\\\\"");
}

TEST(ReportGnuplot, PreambleSetsAReadablePngTerminal) {
  const std::string p = gp_preamble("speedup.png", 1000, 700, "what");
  EXPECT_NE(p.find("set terminal pngcairo size 1000,700"), std::string::npos);
  EXPECT_NE(p.find("font 'DejaVu Sans,14'"), std::string::npos);
  EXPECT_NE(p.find("set output 'speedup.png'"), std::string::npos);
}

TEST(ReportPlots, EveryPlotHasAScriptWithTitleAxesAndItsData) {
  const Fixture f = fixture();
  const auto plots = make_plots(f.metrics, f.results);
  std::vector<std::string> names;
  for (const auto& p : plots) names.push_back(p.name);
  EXPECT_EQ(names, plot_names());
  for (const auto& p : plots) {
    SCOPED_TRACE(p.name);
    EXPECT_NE(p.script.find("set terminal pngcairo"), std::string::npos);
    EXPECT_NE(p.script.find("set output '../" + p.name + ".png'"), std::string::npos);
    EXPECT_NE(p.script.find("title"), std::string::npos);
    EXPECT_NE(p.script.find("set xlabel"), std::string::npos);
    EXPECT_NE(p.script.find("set ylabel"), std::string::npos);
    EXPECT_FALSE(p.title.empty());
    // Every data file the script reads is among the files written with it (or with an earlier plot).
    std::set<std::string> have;
    for (const auto& q : plots)
      for (const auto& [file, text] : q.data) have.insert(file);
    const std::regex dat("'([A-Za-z0-9_]+\\.dat)'");
    for (auto it = std::sregex_iterator(p.script.begin(), p.script.end(), dat); it != std::sregex_iterator(); ++it)
      EXPECT_TRUE(have.count((*it)[1])) << (*it)[1];
  }
}

TEST(ReportPlots, DataFilesCarryTheMetrics) {
  const Fixture f = fixture();
  const auto plots = make_plots(f.metrics, f.results);
  std::map<std::string, std::string> data;
  for (const auto& p : plots)
    for (const auto& [file, text] : p.data) data[file] = text;
  // speedup.dat: processes and median speedup, serial first.
  std::istringstream sp(data.at("speedup.dat"));
  std::string line;
  std::vector<std::pair<int, double>> rows;
  while (std::getline(sp, line))
    if (!line.empty() && line[0] != '#') {
      std::istringstream ls(line);
      int p;
      double s;
      ls >> p >> s;
      rows.push_back({p, s});
    }
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].first, 1);
  EXPECT_NEAR(rows[0].second, 1, 1e-9);
  EXPECT_EQ(rows[1].first, 2);
  EXPECT_NEAR(rows[1].second, 30.0 / 18, 1e-5);
  // One per-step loss file per configuration, one line per step.
  const std::string steps = data.at("loss_steps_parallel_2p.dat");
  EXPECT_EQ(std::count(steps.begin(), steps.end(), '\n'), 2 + 20 * 3);
  // The scaling model: p = 1..1024.
  const std::string model = data.at("scaling_model.dat");
  EXPECT_NE(model.find("\n1024  1024  "), std::string::npos);
  // Oversubscription is marked on the speedup plot, the core count too.
  const auto speedup = std::find_if(plots.begin(), plots.end(), [](const PlotFiles& p) { return p.name == "speedup"; });
  EXPECT_NE(speedup->script.find("oversubscribed"), std::string::npos);
  EXPECT_NE(speedup->script.find("2 cores"), std::string::npos);
}

TEST(ReportPlots, FailedConfigurationsAndAMissingModelAreHandled) {
  const Fixture f = fixture(false, true);
  const auto plots = make_plots(f.metrics, f.results);
  ASSERT_EQ(plots.size(), plot_names().size() - 1);  // no scaling_model.png without a model
  for (const auto& p : plots) {
    EXPECT_EQ(p.script.find("parallel_4p.dat"), std::string::npos) << p.name;
    for (const auto& [file, text] : p.data) EXPECT_EQ(file.find("4p"), std::string::npos) << file;
  }
  const auto eff = std::find_if(plots.begin(), plots.end(), [](const PlotFiles& p) { return p.name == "efficiency"; });
  EXPECT_NE(eff->script.find("FAILED"), std::string::npos);

  EXPECT_TRUE(make_plots(f.metrics, {}).empty());  // nothing succeeded: nothing to draw
}

namespace {

std::map<std::string, std::string> files_of(const std::vector<PlotFiles>& plots) {
  std::map<std::string, std::string> files;
  for (const auto& p : plots) {
    files[p.name + ".gp"] = p.script;
    for (const auto& [file, text] : p.data) files[file] = text;
  }
  return files;
}

// The data lines (not comments, not blank) of one gnuplot data set.
std::vector<std::string> data_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line[0] != '#') out.push_back(line);
  return out;
}

}  // namespace

TEST(ReportPlots, EachBackendIsALabelledSeries) {
  const Fixture f = fixture(true, false, true);
  const auto files = files_of(make_plots(f.metrics, f.results));
  // speedup.dat: one data set per backend (gnuplot's index 0 and 1), each from the serial run.
  const std::string sp = files.at("speedup.dat");
  const size_t split = sp.find("\n\n\n");
  ASSERT_NE(split, std::string::npos) << sp;
  const auto gloo = data_lines(sp.substr(0, split)), mpi = data_lines(sp.substr(split));
  ASSERT_EQ(gloo.size(), 3u) << sp;
  ASSERT_EQ(mpi.size(), 3u) << sp;
  EXPECT_EQ(gloo[0].rfind("1  1  ", 0), 0u);
  EXPECT_EQ(mpi[0].rfind("1  1  ", 0), 0u);
  EXPECT_EQ(mpi[1].rfind("2  2  ", 0), 0u) << mpi[1];  // 30 s / 15 s
  EXPECT_NE(mpi[1].find("\"2 processes, mpi\""), std::string::npos) << mpi[1];
  EXPECT_NE(sp.find("# Gloo\n"), std::string::npos);
  EXPECT_NE(sp.find("# MPI\n"), std::string::npos);
  const std::string gp = files.at("speedup.gp");
  EXPECT_NE(gp.find("'speedup.dat' index 0 using 1:2 with lines lw 3 lc rgb '#1f77b4' title 'measured, Gloo'"),
            std::string::npos) << gp;
  EXPECT_NE(gp.find("'speedup.dat' index 1 using 1:2 with lines lw 3 lc rgb '#d62728' title 'measured, MPI'"),
            std::string::npos) << gp;
  // Bars: one per (backend, N), named so.
  EXPECT_EQ(data_lines(files.at("time_breakdown.dat")).size(), 5u);
  EXPECT_EQ(data_lines(files.at("efficiency.dat")).size(), 5u);
  EXPECT_NE(files.at("time_breakdown.gp").find("\"N = 2\\nmpi\" 2"), std::string::npos) << files.at("time_breakdown.gp");
  EXPECT_NE(files.at("training_comparison.gp").find("title '2 processes, mpi'"), std::string::npos);
  EXPECT_NE(files.at("loss_curves.gp").find("'loss_steps_parallel_2p_mpi.dat' using 1:3 with lines lw 3 lc rgb '#d62728' "
                                            "title '2 processes, mpi'"),
            std::string::npos) << files.at("loss_curves.gp");
  // The scaling model describes Gloo: only its runs are measured beside it.
  const auto measured = data_lines(files.at("scaling_measured.dat"));
  ASSERT_EQ(measured.size(), 3u);
  EXPECT_EQ(measured[1].rfind("2  1.66667  ", 0), 0u) << measured[1];
  EXPECT_NE(files.at("scaling_model.gp").find("title 'measured here, Gloo'"), std::string::npos);
}

TEST(ReportPlots, GlooAloneIsDrawnAsBefore) {
  const auto files = files_of(make_plots(fixture().metrics, fixture().results));
  EXPECT_EQ(files.at("speedup.dat").find("\n\n\n"), std::string::npos);  // one data set
  EXPECT_NE(files.at("speedup.gp").find("title 'measured'"), std::string::npos);
  EXPECT_EQ(files.at("speedup.gp").find("index 1"), std::string::npos);
  EXPECT_NE(files.at("loss_curves.gp").find("title '2 processes'"), std::string::npos);
  for (const auto& [file, text] : files) EXPECT_EQ(text.find("gloo"), std::string::npos) << file;
}

TEST(ReportPlots, MovingAverageIsCentred) {
  const auto m = moving_average({1, 2, 3, 4, 5}, 3);
  ASSERT_EQ(m.size(), 5u);
  EXPECT_DOUBLE_EQ(m[0], 1.5);
  EXPECT_DOUBLE_EQ(m[2], 3);
  EXPECT_DOUBLE_EQ(m[4], 4.5);
  EXPECT_EQ(moving_average({1, 2}, 1), (std::vector<double>{1, 2}));
}

namespace {

void expect_drawn(const std::string& gnuplot, const Fixture& f) {
  TempDir tmp;
  const std::string plots = tmp.path + "/" + kPlotDir;
  fs::create_directories(plots);
  for (const auto& p : make_plots(f.metrics, f.results)) {
    for (const auto& [file, text] : p.data) std::ofstream(plots + "/" + file) << text;
    std::ofstream(plots + "/" + p.name + ".gp") << p.script;
    const auto run = run_gnuplot(gnuplot, plots, p.name + ".gp");
    EXPECT_TRUE(run.ok) << p.name << ": " << run.error;
    EXPECT_TRUE(run.error.empty()) << run.error;
    const auto [w, h] = png_size(tmp.path + "/" + p.name + ".png");
    EXPECT_GT(w, 300u) << p.name;
    EXPECT_GT(h, 300u) << p.name;
    EXPECT_GT(fs::file_size(tmp.path + "/" + p.name + ".png"), 5000u) << p.name;
  }
}

}  // namespace

TEST(ReportPlots, GnuplotDrawsEveryScript) {
  const std::string gnuplot = find_gnuplot();
  if (!check_gnuplot(gnuplot).empty()) GTEST_SKIP() << "gnuplot with pngcairo is not installed";
  for (const bool with_mpi : {false, true}) {
    SCOPED_TRACE(with_mpi ? "gloo and mpi" : "gloo");
    expect_drawn(gnuplot, fixture(true, false, with_mpi));
  }
}

TEST(ReportGnuplot, AMissingGnuplotIsReported) {
  EXPECT_NE(check_gnuplot("").find("not installed"), std::string::npos);
  EXPECT_STREQ(kGnuplotInstallHint, "install gnuplot with: apt-get install gnuplot-nox");
}

TEST(ReportMarkdown, ReportHasTheTableTheImagesAndTheModel) {
  const Fixture f = fixture();
  const std::string md = report_markdown(f.metrics, {"speedup", "scaling_model"}, {"a note"});
  EXPECT_NE(md.find("| run | processes |"), std::string::npos);
  EXPECT_NE(md.find("![Speedup](speedup.png)"), std::string::npos);
  EXPECT_EQ(md.find("loss_curves.png"), std::string::npos);  // not drawn: not linked
  EXPECT_NE(md.find("T_ring(n,p)"), std::string::npos);
  EXPECT_NE(md.find("10 Gbit/s Ethernet"), std::string::npos);
  EXPECT_NE(md.find("**Note:** a note"), std::string::npos);
  EXPECT_NE(md.find("Oversubscription"), std::string::npos);
}

TEST(ReportMarkdown, ReportComparesTheBackendsAtEachN) {
  const Fixture f = fixture(true, false, true);
  const std::string md = report_markdown(f.metrics, {"speedup"}, {});
  EXPECT_NE(md.find("| run | processes | backend |"), std::string::npos) << md;
  EXPECT_NE(md.find("**Backends compared.**"), std::string::npos);
  EXPECT_NE(md.find("loopback TCP"), std::string::npos);
  EXPECT_NE(md.find("- 2 processes: MPI took 15.00 s, Gloo 18.00 s: MPI was 1.20x as fast"), std::string::npos) << md;
  EXPECT_NE(md.find("- 4 processes: MPI took 16.00 s, Gloo 20.00 s: MPI was 1.25x as fast"), std::string::npos) << md;
  EXPECT_NE(md.find("`parallel_<N>p_mpi_results.json` (MPI)"), std::string::npos);
  EXPECT_EQ(report_markdown(fixture().metrics, {}, {}).find("Backends compared"), std::string::npos);
}

// Where the all-reduce ran follows each run's allreduce.overlap: with
// --overlap none, MPI's runs have no communication thread.
TEST(ReportMarkdown, TheReportSaysWhereEachBackendRanItsAllreduce) {
  const std::string both = report_markdown(fixture(true, false, true).metrics, {"time_breakdown"}, {});
  EXPECT_NE(both.find("Both run the all-reduce on each rank's communication thread, next to backward."),
            std::string::npos) << both;
  EXPECT_NE(both.find("after its backward pass; the rest of the all-reduce ran during backward, on the communication "
                      "thread."),
            std::string::npos) << both;

  const std::string md = report_markdown(fixture(true, false, true, "none").metrics, {"time_breakdown"}, {});
  EXPECT_EQ(md.find("Both run"), std::string::npos) << md;
  EXPECT_NE(md.find("Gloo runs the all-reduce on each rank's communication thread, next to backward; MPI on the "
                    "training thread, after backward (`--overlap none`)."),
            std::string::npos) << md;
  EXPECT_NE(md.find("With a communication thread (`--overlap thread`), the rest of the all-reduce ran during "
                    "backward, on the communication thread; without (`--overlap none`), all of it is exposed"),
            std::string::npos) << md;
}
