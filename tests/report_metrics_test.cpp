// The metrics of run_experiments: median/min/max, speedup, efficiency,
// exposed communication, failed runs, and the tables.
#include <gtest/gtest.h>

#include <cmath>

#include "report/experiment.h"
#include "report/metrics.h"
#include "results_test_util.h"
#include "report_test_util.h"

using namespace ddp::report;
using nlohmann::json;

namespace {

// A results file as the trainers write it: what the metrics read, the other
// required fields from the schema's defaults.
json results(int world, double total, double train, double wait_per_epoch, int epochs = 2, double accuracy = 0.97) {
  json e = json::array();
  for (int i = 0; i < epochs; ++i)
    e.push_back({{"epoch", i + 1},
                 {"loss", 0.5 / (i + 1)},
                 {"test_loss", 0.4 / (i + 1)},
                 {"test_accuracy", accuracy},
                 {"train_time_s", train / epochs},
                 {"eval_time_s", (total - train) / epochs},
                 {"time_s", total / epochs},
                 {"allreduce_busy_s", world > 1 ? 2 * wait_per_epoch : 0.0},
                 {"comm_cpu_s", world > 1 ? 0.5 * wait_per_epoch : 0.0},
                 {"compute_preempted_s", world > 1 ? 0.75 * wait_per_epoch : 0.0},
                 {"time_breakdown_s",
                  {{"data", 0.01},
                   {"forward", 0.3 * train / epochs},
                   {"backward", 0.6 * train / epochs - wait_per_epoch - 0.02},
                   {"allreduce_wait", wait_per_epoch},
                   {"optimizer", 0.01},
                   {"other", 0.1 * train / epochs}}}});
  return ddp::results::test::complete_results({{"world_size", world},
                                                {"threads_per_process", 1},
                                                {"oversubscribed", world > 2},
                                                {"config", {{"batch_size", 64}}},
                                                {"steps_per_epoch", 100 / world},
                                                {"samples_per_epoch", 6400},
                                                {"epochs", e},
                                                {"total_time_s", total},
                                                {"train_time_s", train},
                                                {"throughput_samples_per_s", 6400.0 * epochs / train},
                                                {"final_test_accuracy", accuracy}});
}

RunRecord ok_run(int repeat, const json& r) {
  RunRecord rec;
  rec.repeat = repeat;
  rec.ok = true;
  rec.exit_status = 0;
  rec.results = ddp::results::run_result_from_json(r, "test fixture");
  rec.results_file = "x.json";
  return rec;
}

Configuration config(const std::string& name, int p, std::vector<RunRecord> runs) {
  Configuration c;
  c.name = name;
  c.label = name;
  c.processes = p;
  c.program = p == 1 && name == "serial" ? "train_serial" : "train_parallel";
  c.results_file = name + "_results.json";
  c.runs = std::move(runs);
  return c;
}

}  // namespace

TEST(ReportMetrics, SummaryIsMedianMinMax) {
  const Summary odd = summarize({3, 1, 2});
  EXPECT_DOUBLE_EQ(odd.median, 2);
  EXPECT_DOUBLE_EQ(odd.min, 1);
  EXPECT_DOUBLE_EQ(odd.max, 3);
  EXPECT_EQ(odd.n, 3);
  const Summary even = summarize({4, 1, 3, 2});
  EXPECT_DOUBLE_EQ(even.median, 2.5);
  const Summary one = summarize({7});
  EXPECT_DOUBLE_EQ(one.median, 7);
  EXPECT_DOUBLE_EQ(one.min, 7);
  EXPECT_DOUBLE_EQ(one.max, 7);
  const Summary with_nan = summarize({NAN, 5, INFINITY, 1});
  EXPECT_EQ(with_nan.n, 2);
  EXPECT_DOUBLE_EQ(with_nan.median, 3);
  const Summary none = summarize({});
  EXPECT_EQ(none.n, 0);
  EXPECT_TRUE(std::isnan(none.median));
  EXPECT_TRUE(to_json(none)["median"].is_null());
}

TEST(ReportMetrics, SpeedupTimesParallelTimeIsSerialTime) {
  for (double ts : {10.0, 37.5, 100.0})
    for (double tp : {5.0, 20.0, 150.0}) {
      const double s = speedup(ts, tp);
      EXPECT_DOUBLE_EQ(s * tp, ts);
      for (int n : {1, 2, 4, 64}) EXPECT_DOUBLE_EQ(efficiency(s, n), s / n);
    }
  EXPECT_TRUE(std::isnan(speedup(10, 0)));
  EXPECT_TRUE(std::isnan(speedup(0, 10)));
}

TEST(ReportMetrics, SpeedupRangeCoversTheNoiseOfBothSides) {
  const Summary ts = summarize({10, 12, 11});
  const Summary tp = summarize({6, 5, 8});
  const Summary s = speedup_summary(ts, tp);
  EXPECT_DOUBLE_EQ(s.median, 11.0 / 6);
  EXPECT_DOUBLE_EQ(s.min, 10.0 / 8);
  EXPECT_DOUBLE_EQ(s.max, 12.0 / 5);
  const Summary e = efficiency_summary(s, 4);
  EXPECT_DOUBLE_EQ(e.median, s.median / 4);
  EXPECT_DOUBLE_EQ(e.min, s.min / 4);
  EXPECT_DOUBLE_EQ(e.max, s.max / 4);
}

TEST(ReportMetrics, ExposedCommunicationIsWaitOverTrainingTime) {
  const auto r = ddp::results::run_result_from_json(results(2, 12, 10, 0.5));  // 2 epochs x 0.5 s waiting, 10 s training
  EXPECT_NEAR(exposed_comm_fraction(r), 1.0 / 10, 1e-12);
  const PhaseSums s = phase_sums(r);
  EXPECT_EQ(s.epochs, 2);
  EXPECT_NEAR(s.allreduce_wait, 1.0, 1e-12);
  EXPECT_NEAR(s.allreduce_busy, 2.0, 1e-12);
  EXPECT_NEAR(s.eval, 2.0, 1e-12);
}

TEST(ReportMetrics, ConfigurationMetricsAreConsistent) {
  const Configuration serial = config("serial", 1, {ok_run(1, results(1, 30, 25, 0)), ok_run(2, results(1, 34, 29, 0)),
                                                    ok_run(3, results(1, 32, 27, 0))});
  const Configuration p2 = config("parallel_2p", 2, {ok_run(1, results(2, 20, 17, 0.4)), ok_run(2, results(2, 18, 15, 0.3)),
                                                     ok_run(3, results(2, 19, 16, 0.5))});
  const json m = configuration_metrics(p2, &serial);
  EXPECT_EQ(m["status"], "ok");
  EXPECT_EQ(m["processes"], 2);
  EXPECT_DOUBLE_EQ(m["total_time_s"]["median"].get<double>(), 19);
  EXPECT_DOUBLE_EQ(m["total_time_s"]["min"].get<double>(), 18);
  EXPECT_DOUBLE_EQ(m["total_time_s"]["max"].get<double>(), 20);
  const double s = m["speedup"]["median"];
  EXPECT_DOUBLE_EQ(s * 19, 32);  // speedup x T_parallel = T_serial (medians)
  EXPECT_DOUBLE_EQ(m["speedup"]["min"].get<double>(), 30.0 / 20);
  EXPECT_DOUBLE_EQ(m["speedup"]["max"].get<double>(), 34.0 / 18);
  EXPECT_DOUBLE_EQ(m["efficiency"]["median"].get<double>(), s / 2);
  // Per run wait / train: 0.8/17, 0.6/15, 1.0/16; the median is 0.8/17.
  EXPECT_NEAR(m["exposed_comm_fraction"]["median"].get<double>(), 0.8 / 17, 1e-12);
  EXPECT_NEAR(m["exposed_comm_fraction"]["max"].get<double>(), 1.0 / 16, 1e-12);
  EXPECT_EQ(m["representative_repeat"], 3);  // the run with the median total time
  EXPECT_EQ(m["global_batch"], 128);
  EXPECT_EQ(m["runs"].size(), 3u);
  EXPECT_NEAR(m["allreduce"]["hidden_fraction"].get<double>(), 0.5, 1e-12);  // busy = 2 x wait
  const double exposed = m["allreduce"]["exposed_per_step_s"];
  EXPECT_GT(exposed, 0);
  EXPECT_NEAR(m["allreduce"]["cpu_per_step_s"].get<double>(), 0.5 * exposed, 1e-12);
  EXPECT_NEAR(m["allreduce"]["compute_preempted_per_step_s"].get<double>(), 0.75 * exposed, 1e-12);
  // Results files from before these were measured: unknown, not zero.
  json old = results(2, 19, 16, 0.4);
  for (auto& e : old["epochs"]) {
    e.erase("comm_cpu_s");
    e.erase("compute_preempted_s");
  }
  const json mo = configuration_metrics(config("p2", 2, {ok_run(1, old)}), &serial);
  EXPECT_TRUE(mo["allreduce"]["cpu_per_step_s"].is_null());
  EXPECT_TRUE(mo["allreduce"]["compute_preempted_per_step_s"].is_null());

  const json ms = configuration_metrics(serial, &serial);
  EXPECT_DOUBLE_EQ(ms["speedup"]["median"].get<double>(), 1);
  EXPECT_DOUBLE_EQ(ms["efficiency"]["median"].get<double>(), 1);
  EXPECT_DOUBLE_EQ(ms["speedup"]["min"].get<double>(), 1);  // the baseline: no range of its own
  EXPECT_DOUBLE_EQ(ms["speedup"]["max"].get<double>(), 1);
  EXPECT_DOUBLE_EQ(ms["total_time_s"]["min"].get<double>(), 30);  // its noise shows here
  EXPECT_DOUBLE_EQ(ms["total_time_s"]["max"].get<double>(), 34);
}

TEST(ReportMetrics, AFailedRunIsRecordedAndLeftOutOfTheStatistics) {
  const Configuration serial = config("serial", 1, {ok_run(1, results(1, 30, 25, 0))});
  RunRecord bad;
  bad.repeat = 2;
  bad.exit_status = 134;
  bad.error = "train_parallel: error: rank 1 was killed by signal 6";
  bad.log_file = "logs/parallel_4p.run2.log";
  const Configuration p4 = config("parallel_4p", 4, {ok_run(1, results(4, 15, 12, 1)), bad});
  const json m = configuration_metrics(p4, &serial);
  EXPECT_EQ(m["status"], "partial");
  EXPECT_EQ(m["total_time_s"]["n"], 1);
  EXPECT_DOUBLE_EQ(m["speedup"]["median"].get<double>(), 2);
  EXPECT_EQ(m["runs"][1]["status"], "failed");
  EXPECT_EQ(m["runs"][1]["exit_status"], 134);
  EXPECT_EQ(m["runs"][1]["error"], bad.error);
  EXPECT_TRUE(m["runs"][1]["results_file"].is_null());

  const Configuration dead = config("parallel_8p", 8, {bad});
  const json d = configuration_metrics(dead, &serial);
  EXPECT_EQ(d["status"], "failed");
  EXPECT_TRUE(d["speedup"]["median"].is_null());
  EXPECT_TRUE(d["results_file"].is_null());

  const json all = performance_metrics({{"directory", "x"}}, {{"cores", 2}}, json::object(), {serial, p4, dead},
                                       {{"status", "unavailable"}});
  EXPECT_EQ(all["status"], "failed");
  EXPECT_EQ(all["failed_runs"], 2);
  EXPECT_EQ(all["runs"], 4);
  EXPECT_EQ(all["configurations"].size(), 3u);
  const std::string table = results_table_text(all);
  EXPECT_NE(table.find("FAILED"), std::string::npos) << table;
  EXPECT_NE(table.find("oversubscribed"), std::string::npos) << table;
}

TEST(ReportMetrics, WithoutASerialBaselineThereIsNoSpeedup) {
  const Configuration p2 = config("parallel_2p", 2, {ok_run(1, results(2, 20, 17, 0.4))});
  const json m = configuration_metrics(p2, nullptr);
  EXPECT_TRUE(m["speedup"]["median"].is_null());
  EXPECT_TRUE(m["efficiency"]["median"].is_null());
  EXPECT_DOUBLE_EQ(m["total_time_s"]["median"].get<double>(), 20);
}

TEST(ReportMetrics, TablesShowEveryConfiguration) {
  const Configuration serial = config("serial", 1, {ok_run(1, results(1, 30, 25, 0))});
  const Configuration p2 = config("parallel_2p", 2, {ok_run(1, results(2, 20, 17, 0.4))});
  const json all = performance_metrics({{"directory", "x"}}, {{"cores", 2}}, json::object(), {serial, p2}, json::object());
  const std::string text = results_table_text(all);
  EXPECT_NE(text.find("speedup"), std::string::npos);
  EXPECT_NE(text.find("1.50x"), std::string::npos) << text;
  EXPECT_NE(text.find("75%"), std::string::npos) << text;
  const std::string md = results_table_markdown(all);
  EXPECT_EQ(md.rfind("| run |", 0), 0u) << md;
  EXPECT_NE(md.find("| parallel_2p | 2 | 20.0 | 1.50x | 75% |"), std::string::npos) << md;
}

namespace {

using report_test::on_backend;

// serial 30 s; at 2 processes gloo 20 s and mpi 16 s; at 4 processes gloo 18 s and a failed mpi run.
json two_backends() {
  RunRecord bad;
  bad.exit_status = 1;
  bad.error = "mpirun: rank 1 exited with status 1";
  return performance_metrics(
      {{"directory", "x"}}, {{"cores", 2}}, json::object(),
      {config("serial", 1, {ok_run(1, results(1, 30, 25, 0))}),
       on_backend(config("parallel_2p", 2, {ok_run(1, results(2, 20, 17, 0.4))}), "gloo"),
       on_backend(config("parallel_2p_mpi", 2, {ok_run(1, results(2, 16, 13, 0.1))}), "mpi"),
       on_backend(config("parallel_4p", 4, {ok_run(1, results(4, 18, 15, 0.6))}), "gloo"),
       on_backend(config("parallel_4p_mpi", 4, {bad}), "mpi")},
      json::object());
}

}  // namespace

TEST(ReportMetrics, EveryParallelEntrySaysItsBackend) {
  const json m = two_backends();
  std::vector<std::string> seen;
  for (const auto& c : m["configurations"]) seen.push_back(c.value("backend", "-"));
  EXPECT_EQ(seen, (std::vector<std::string>{"-", "gloo", "mpi", "gloo", "mpi"}));
  EXPECT_EQ(backends(m), (std::vector<std::string>{"gloo", "mpi"}));
  EXPECT_TRUE(names_backends(m));
  EXPECT_EQ(run_label(m["configurations"][2], true), "parallel_2p_mpi, mpi");
  EXPECT_EQ(run_label(m["configurations"][2], false), "parallel_2p_mpi");
  EXPECT_EQ(run_label(m["configurations"][0], true), "serial");
  // Each backend's speedup against the one serial baseline.
  EXPECT_DOUBLE_EQ(m["configurations"][1]["speedup"]["median"].get<double>(), 30.0 / 20);
  EXPECT_DOUBLE_EQ(m["configurations"][2]["speedup"]["median"].get<double>(), 30.0 / 16);
  // An entry written before there was a choice of backend is Gloo's.
  EXPECT_EQ(backend_of({{"name", "parallel_2p"}, {"program", "train_parallel"}}), "gloo");
  EXPECT_EQ(backend_of({{"name", "serial"}, {"program", "train_serial"}}), "");
}

TEST(ReportMetrics, BackendsAreComparedAtEachProcessCount) {
  const json m = two_backends();
  ASSERT_TRUE(m.contains("backend_comparison"));
  const json& cmp = m["backend_comparison"];
  ASSERT_EQ(cmp.size(), 2u);
  EXPECT_EQ(cmp[0]["processes"], 2);
  EXPECT_EQ(cmp[0]["fastest"], "mpi");
  EXPECT_EQ(cmp[0]["slowest"], "gloo");
  EXPECT_DOUBLE_EQ(cmp[0]["time_ratio"].get<double>(), 20.0 / 16);
  EXPECT_DOUBLE_EQ(cmp[0]["backends"]["mpi"]["speedup"].get<double>(), 30.0 / 16);
  EXPECT_DOUBLE_EQ(cmp[0]["backends"]["gloo"]["efficiency"].get<double>(), 30.0 / 20 / 2);
  EXPECT_NEAR(cmp[0]["backends"]["mpi"]["exposed_comm_fraction"].get<double>(), 0.2 / 13, 1e-12);
  EXPECT_EQ(cmp[1]["processes"], 4);
  EXPECT_TRUE(cmp[1]["fastest"].is_null());  // MPI failed: nothing to compare
  EXPECT_EQ(cmp[1]["backends"]["mpi"]["status"], "failed");

  const auto sentences = backend_comparison_sentences(cmp);
  ASSERT_EQ(sentences.size(), 2u);
  EXPECT_EQ(sentences[0].rfind("2 processes: MPI took 16.00 s, Gloo 20.00 s: MPI was 1.25x as fast (20% less time)", 0),
            0u)
      << sentences[0];
  EXPECT_NE(sentences[1].find("no comparison (MPI failed)"), std::string::npos) << sentences[1];

  json close = cmp[0];
  close["backends"]["gloo"]["total_time_s"] = 16.3;
  close["time_ratio"] = 16.3 / 16;
  EXPECT_NE(backend_comparison_sentences(json::array({close}))[0].find("no clear difference"), std::string::npos);
}

TEST(ReportMetrics, TablesNameTheBackendOnlyWhenAnotherThanGlooRan) {
  const json m = two_backends();
  const std::string md = results_table_markdown(m);
  EXPECT_EQ(md.rfind("| run | processes | backend | time (s) |", 0), 0u) << md;
  EXPECT_NE(md.find("| parallel_2p_mpi | 2 | mpi | 16.0 | 1.88x |"), std::string::npos) << md;
  EXPECT_NE(md.find("| serial | 1 | - | 30.0 |"), std::string::npos) << md;
  EXPECT_NE(results_table_text(m).find("backend"), std::string::npos);

  // Gloo alone (the default): the table and the metrics read as before.
  const json gloo = performance_metrics({{"directory", "x"}}, {{"cores", 2}}, json::object(),
                                        {config("serial", 1, {ok_run(1, results(1, 30, 25, 0))}),
                                         on_backend(config("parallel_2p", 2, {ok_run(1, results(2, 20, 17, 0.4))}), "gloo")},
                                        json::object());
  EXPECT_FALSE(names_backends(gloo));
  EXPECT_FALSE(gloo.contains("backend_comparison"));
  EXPECT_EQ(results_table_markdown(gloo).find("backend"), std::string::npos);
  EXPECT_EQ(results_table_text(gloo).find("backend"), std::string::npos);
}

TEST(ReportMetrics, DurationsAreFormatted) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(65), "1:05");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(NAN), "--:--");
}

namespace {

Configuration in_precision(Configuration c, const std::string& precision) {
  c.precision = precision;
  if (c.processes == 1 && c.name.rfind("serial", 0) == 0) c.program = "train_serial";
  c.label = c.name + (precision == "fp32" ? "" : ", " + precision);
  return c;
}

// fp32: serial 30 s, 2 processes 20 s; bf16: serial 18 s, 2 processes 12 s
// (accuracy 0.5 points lower), 4 processes failed.
json two_precisions() {
  RunRecord bad;
  bad.exit_status = 1;
  bad.error = "rank 1 exited with status 1";
  return performance_metrics(
      {{"directory", "x"}}, {{"cores", 2}}, json::object(),
      {in_precision(config("serial", 1, {ok_run(1, results(1, 30, 25, 0))}), "fp32"),
       in_precision(config("serial_bf16", 1, {ok_run(1, results(1, 18, 15, 0, 2, 0.965))}), "bf16"),
       in_precision(on_backend(config("parallel_2p", 2, {ok_run(1, results(2, 20, 17, 0.4))}), "gloo"), "fp32"),
       in_precision(on_backend(config("parallel_2p_bf16", 2, {ok_run(1, results(2, 12, 10, 0.4, 2, 0.965))}), "gloo"),
                    "bf16"),
       in_precision(on_backend(config("parallel_4p", 4, {ok_run(1, results(4, 18, 15, 0.6))}), "gloo"), "fp32"),
       in_precision(on_backend(config("parallel_4p_bf16", 4, {bad}), "gloo"), "bf16")},
      json::object());
}

}  // namespace

TEST(ReportMetrics, EachRunIsMeasuredAgainstTheSerialRunOfItsPrecision) {
  const json m = two_precisions();
  EXPECT_EQ(precisions(m), (std::vector<std::string>{"fp32", "bf16"}));
  EXPECT_TRUE(names_precisions(m));
  const json& cs = m["configurations"];
  EXPECT_EQ(cs[1]["precision"], "bf16");
  EXPECT_DOUBLE_EQ(cs[0]["speedup"]["median"].get<double>(), 1);
  EXPECT_DOUBLE_EQ(cs[1]["speedup"]["median"].get<double>(), 30.0 / 18);  // bf16 serial against fp32 serial
  EXPECT_DOUBLE_EQ(cs[1]["efficiency"]["median"].get<double>(), 1);       // but the baseline of bf16's runs
  EXPECT_DOUBLE_EQ(cs[2]["speedup"]["median"].get<double>(), 30.0 / 20);  // fp32 against fp32
  EXPECT_DOUBLE_EQ(cs[3]["speedup"]["median"].get<double>(), 18.0 / 12);  // bf16 against bf16
  EXPECT_DOUBLE_EQ(cs[3]["efficiency"]["median"].get<double>(), 18.0 / 12 / 2);
  // An entry written before there was a choice of precision is fp32.
  EXPECT_EQ(precision_of({{"name", "parallel_2p"}}), "fp32");

  // Without an fp32 serial run, the bf16 one is its own baseline.
  const json bf16 = performance_metrics(
      {{"directory", "x"}}, {{"cores", 2}}, json::object(),
      {in_precision(config("serial_bf16", 1, {ok_run(1, results(1, 18, 15, 0))}), "bf16"),
       in_precision(on_backend(config("parallel_2p_bf16", 2, {ok_run(1, results(2, 12, 10, 0.4))}), "gloo"), "bf16")},
      json::object());
  EXPECT_DOUBLE_EQ(bf16["configurations"][0]["speedup"]["median"].get<double>(), 1);
  EXPECT_DOUBLE_EQ(bf16["configurations"][1]["speedup"]["median"].get<double>(), 18.0 / 12);
  EXPECT_FALSE(bf16.contains("precision_comparison"));  // nothing to compare with
}

TEST(ReportMetrics, PrecisionsAreComparedRunByRun) {
  const json m = two_precisions();
  ASSERT_TRUE(m.contains("precision_comparison"));
  const json& cmp = m["precision_comparison"];
  ASSERT_EQ(cmp.size(), 3u);  // serial, 2 and 4 processes
  EXPECT_EQ(cmp[0]["label"], "serial");
  EXPECT_TRUE(cmp[0]["backend"].is_null());
  EXPECT_DOUBLE_EQ(cmp[0]["time_ratio"].get<double>(), 30.0 / 18);
  EXPECT_EQ(cmp[1]["processes"], 2);
  EXPECT_EQ(cmp[1]["backend"], "gloo");
  EXPECT_DOUBLE_EQ(cmp[1]["time_ratio"].get<double>(), 20.0 / 12);
  EXPECT_DOUBLE_EQ(cmp[1]["throughput_ratio"].get<double>(), (6400.0 * 2 / 10) / (6400.0 * 2 / 17));
  EXPECT_NEAR(cmp[1]["accuracy_difference"].get<double>(), -0.005, 1e-12);
  EXPECT_DOUBLE_EQ(cmp[1]["precisions"]["bf16"]["speedup"].get<double>(), 18.0 / 12);
  EXPECT_TRUE(cmp[2]["time_ratio"].is_null());  // bf16 failed: nothing to compare
  EXPECT_EQ(cmp[2]["precisions"]["bf16"]["status"], "failed");

  const auto sentences = precision_comparison_sentences(cmp);
  ASSERT_EQ(sentences.size(), 3u);
  EXPECT_EQ(sentences[1].rfind("parallel_2p: bf16 took 12.00 s, fp32 20.00 s: bf16 was 1.67x as fast", 0), 0u)
      << sentences[1];
  EXPECT_NE(sentences[1].find("test accuracy 96.50% (bf16) vs 97.00% (fp32), -0.50 points"), std::string::npos)
      << sentences[1];
  EXPECT_NE(sentences[2].find("no comparison (bf16 failed)"), std::string::npos) << sentences[2];

  // fp32 alone (the default): no comparison, and the metrics read as before.
  const json fp32 = performance_metrics({{"directory", "x"}}, {{"cores", 2}}, json::object(),
                                        {config("serial", 1, {ok_run(1, results(1, 30, 25, 0))}),
                                         on_backend(config("parallel_2p", 2, {ok_run(1, results(2, 20, 17, 0.4))}), "gloo")},
                                        json::object());
  EXPECT_FALSE(names_precisions(fp32));
  EXPECT_FALSE(fp32.contains("precision_comparison"));
  EXPECT_EQ(fp32["configurations"][1]["precision"], "fp32");
}

// With --precision fp32 bf16 --backends gloo mpi, the backends are compared
// within each precision, never a bf16 run against an fp32 one.
TEST(ReportMetrics, BackendsAreComparedWithinAPrecision) {
  const auto config = [](const char* backend, const char* precision, double seconds) {
    return json{{"name", "parallel_2p"},     {"processes", 2},
                {"backend", backend},        {"precision", precision},
                {"status", "ok"},            {"total_time_s", {{"median", seconds}}}};
  };
  const json cmp = backend_comparison(json::array(
      {config("gloo", "fp32", 9.2), config("mpi", "fp32", 9.1), config("gloo", "bf16", 6.2), config("mpi", "bf16", 5.9)}));
  ASSERT_EQ(cmp.size(), 2u) << cmp.dump();
  for (const auto& e : cmp) {
    const bool bf16 = e.contains("precision");
    EXPECT_EQ(e["fastest"], "mpi");
    EXPECT_NEAR(e["time_ratio"].get<double>(), bf16 ? 6.2 / 5.9 : 9.2 / 9.1, 1e-9) << e.dump();
  }
  const auto sentences = backend_comparison_sentences(cmp);
  ASSERT_EQ(sentences.size(), 2u);
  EXPECT_NE((sentences[0] + sentences[1]).find("2 processes, bf16: MPI took 5.90 s, Gloo 6.20 s"), std::string::npos)
      << sentences[0] << "\n" << sentences[1];
}

namespace {

// run_experiments --variant: a 2-rank run in each variant, its bytes per step as counted.
Configuration in_variant(const std::string& variant, double total, double accuracy, double bytes) {
  RunRecord r = ok_run(1, results(2, total, total - 2, 0.4, 2, accuracy));
  r.results.bytes_per_step = bytes;
  r.results.bytes_per_epoch = 50 * bytes;
  Configuration c = on_backend(config("parallel_2p_" + variant, 2, {r}), "gloo");
  c.variant = variant;
  c.label = "2 processes, " + variant;
  return c;
}

}  // namespace

TEST(ReportMetrics, VariantsAreComparedWithTheFirstByBytesPerStep) {
  const json m = performance_metrics(
      {{"directory", "x"}, {"config", {{"variants", {{"ddp", ""}, {"psgd", "--grad-compression powersgd"}}}}}},
      {{"cores", 2}}, json::object(),
      {config("serial", 1, {ok_run(1, results(1, 30, 25, 0))}), in_variant("ddp", 20, 0.97, 1e6),
       in_variant("psgd", 16, 0.96, 1e5)},
      json::object());
  EXPECT_EQ(variants(m), (std::vector<std::string>{"ddp", "psgd"}));
  EXPECT_TRUE(names_variants(m));
  const json& cs = m["configurations"];
  EXPECT_FALSE(cs[0].contains("variant"));
  EXPECT_FALSE(cs[0]["allreduce"].contains("bytes_per_step"));  // the serial run hands nothing to a communicator
  EXPECT_EQ(cs[2]["variant"], "psgd");
  EXPECT_DOUBLE_EQ(cs[2]["allreduce"]["bytes_per_step"].get<double>(), 1e5);
  EXPECT_DOUBLE_EQ(cs[2]["allreduce"]["bytes_per_epoch"].get<double>(), 5e6);
  EXPECT_DOUBLE_EQ(cs[2]["speedup"]["median"].get<double>(), 30.0 / 16);  // against the one serial run
  EXPECT_TRUE(in_first_variant(cs, cs[0]));
  EXPECT_TRUE(in_first_variant(cs, cs[1]));
  EXPECT_FALSE(in_first_variant(cs, cs[2]));

  const auto lines = variant_comparison_lines(m);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "**2 processes, ddp** (no extra flags): speedup 1.50x, test accuracy 97.00%, 1.000 MB all-reduced "
                      "per step and rank (the reference of the bytes saved).");
  EXPECT_EQ(lines[1], "**2 processes, psgd** (`--grad-compression powersgd`): speedup 1.88x, test accuracy 96.00%, "
                      "0.100 MB all-reduced per step and rank, 90.0% fewer bytes than ddp (10.0x fewer).");
  EXPECT_NE(variant_comparison_markdown(m).find("- " + lines[1] + "\n"), std::string::npos);

  // Without --variant: no variant anywhere, the report as it was.
  const json plain = performance_metrics({{"directory", "x"}}, {{"cores", 2}}, json::object(),
                                         {config("serial", 1, {ok_run(1, results(1, 30, 25, 0))}),
                                          on_backend(config("parallel_2p", 2, {ok_run(1, results(2, 20, 17, 0.4))}), "gloo")},
                                         json::object());
  EXPECT_FALSE(names_variants(plain));
  EXPECT_FALSE(plain["configurations"][1].contains("variant"));
  EXPECT_TRUE(variant_comparison_lines(plain).empty());
  EXPECT_EQ(variant_comparison_markdown(plain), "");
}
