// run_experiments end to end: a tiny real suite (real MNIST, real processes),
// its files, their consistency, and the bad input it must refuse up front.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "test_util.h"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string binary(const std::string& name) { return std::string(DDP_BINARY_DIR) + "/" + name; }
std::string mnist_dir() { return std::string(DDP_SOURCE_DIR) + "/data/mnist"; }

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

using test_util::TempDir;

struct Result {
  int status = -1;
  std::string out, err;
};

// Runs argv with extra environment variables; stdout and stderr are captured.
Result run(const std::vector<std::string>& argv, const std::string& tmp,
           const std::vector<std::pair<std::string, std::string>>& env = {}, double limit_s = 300) {
  const std::string out = tmp + "/stdout.txt", err = tmp + "/stderr.txt";
  const pid_t pid = fork();
  if (pid == 0) {
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    freopen(out.c_str(), "w", stdout);
    freopen(err.c_str(), "w", stderr);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  Result r;
  int status = 0;
  const auto start = std::chrono::steady_clock::now();
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() - start > std::chrono::duration<double>(limit_s)) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << argv[0] << " did not finish in " << limit_s << " s";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

std::vector<std::string> experiment_dirs(const std::string& out) {
  std::vector<std::string> dirs;
  if (!fs::exists(out)) return dirs;
  for (const auto& e : fs::directory_iterator(out))
    if (e.is_directory() && e.path().filename().string().rfind("experiment_", 0) == 0) dirs.push_back(e.path().string());
  return dirs;
}

std::pair<uint32_t, uint32_t> png_size(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char h[24] = {};
  in.read(reinterpret_cast<char*>(h), 24);
  const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (!in || std::memcmp(h, sig, 8) != 0 || std::memcmp(h + 12, "IHDR", 4) != 0) return {0, 0};
  auto be = [&](int o) { return (uint32_t(h[o]) << 24) | (uint32_t(h[o + 1]) << 16) | (uint32_t(h[o + 2]) << 8) | h[o + 3]; };
  return {be(16), be(20)};
}

const char* const kPlots[] = {"loss_curves", "speedup", "efficiency", "training_comparison", "time_breakdown", "scaling_model"};

// The 2-rank run's trace (train_parallel --trace, its first repeat): it
// parses, every rank has its lanes and events, the metrics name it, and
// timeline.png is drawn from it and shown in report.md.
void expect_trace_and_timeline(const std::string& dir, const json& m) {
  const std::string file = "trace_parallel_2p.json";
  ASSERT_TRUE(fs::exists(dir + "/" + file));
  const json trace = json::parse(read_file(dir + "/" + file));
  EXPECT_EQ(trace["otherData"]["world_size"], 2);
  std::map<int, std::set<std::string>> lanes;  // pid (rank + 1) -> thread names
  std::set<int> with_events;
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name") lanes[e["pid"].get<int>()].insert(e["args"]["name"]);
    if (e["ph"] == "X") with_events.insert(e["pid"].get<int>());
  }
  for (int pid : {1, 2}) {
    SCOPED_TRACE("rank " + std::to_string(pid - 1));
    EXPECT_TRUE(lanes[pid].count("compute"));
    EXPECT_TRUE(lanes[pid].count("communication"));
    EXPECT_TRUE(with_events.count(pid));
  }
  EXPECT_FALSE(m["configurations"][0].contains("trace_file"));  // the serial run records none
  EXPECT_EQ(m["configurations"][1]["trace_file"], file);
  EXPECT_EQ(m["configurations"][1]["runs"][0]["trace_file"], file);
  EXPECT_EQ(m["timeline"]["trace_file"], file);
  const auto [w, h] = png_size(dir + "/timeline.png");
  EXPECT_GT(w, 300u);
  EXPECT_GT(h, 300u);
  EXPECT_TRUE(fs::exists(dir + "/plots/timeline.gp"));
  const std::string report = read_file(dir + "/report.md");
  EXPECT_NE(report.find("](timeline.png)"), std::string::npos) << report;
  EXPECT_NE(report.find("`" + file + "`"), std::string::npos) << report;
}

// --test-limit: evaluating all 10,000 test samples would take most of each run.
std::vector<std::string> tiny_suite(const std::string& out) {
  return {binary("run_experiments"), "--limit", "640", "--test-limit", "2000", "-e", "1", "-p", "2", "-o", out,
          "--data-dir", mnist_dir()};
}

}  // namespace

TEST(Experiments, TinySuiteWritesEveryFileAndConsistentMetrics) {
  TempDir tmp;
  const std::string out = tmp.path + "/results";
  const Result r = run(tiny_suite(out), tmp.path);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const auto dirs = experiment_dirs(out);
  ASSERT_EQ(dirs.size(), 1u);
  const std::string dir = dirs[0];
  EXPECT_NE(r.out.find("[run 1/2] serial"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[run 2/2] 2 processes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("epoch 1/1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("speedup"), std::string::npos) << r.out;  // the table
  EXPECT_NE(r.out.find("report: " + dir + "/report.md"), std::string::npos) << r.out;

  for (const char* f : {"serial_results.json", "parallel_2p_results.json", "performance_metrics.json", "report.md"})
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  const json serial = json::parse(read_file(dir + "/serial_results.json"));
  const json par = json::parse(read_file(dir + "/parallel_2p_results.json"));
  const json m = json::parse(read_file(dir + "/performance_metrics.json"));
  EXPECT_EQ(serial["world_size"], 1);
  EXPECT_EQ(par["world_size"], 2);
  for (const json* x : {&serial, &par}) {  // --test-limit reached every run
    EXPECT_EQ((*x)["test_samples"], 2000);
    EXPECT_EQ((*x)["config"]["test_limit"], 2000);
  }
  EXPECT_EQ(m["status"], "ok");
  EXPECT_EQ(m["failed_runs"], 0);
  EXPECT_GE(m["machine"]["cores"].get<int>(), 1);
  EXPECT_TRUE(m["versions"].contains("onednn"));
  ASSERT_EQ(m["configurations"].size(), 2u);
  const json& c = m["configurations"][1];
  EXPECT_EQ(c["processes"], 2);
  EXPECT_EQ(c["status"], "ok");
  const double ts = serial["total_time_s"], tp = par["total_time_s"];
  const double s = c["speedup"]["median"];
  EXPECT_NEAR(s * tp, ts, 1e-9 * ts);                                       // speedup x T_parallel = T_serial
  EXPECT_NEAR(c["efficiency"]["median"].get<double>(), s / 2, 1e-12);       // efficiency = speedup / N
  EXPECT_NEAR(c["throughput_samples_per_s"]["median"].get<double>(), par["throughput_samples_per_s"].get<double>(), 1e-9);
  EXPECT_NEAR(c["final_test_accuracy"]["median"].get<double>(), par["final_test_accuracy"].get<double>(), 1e-12);
  EXPECT_EQ(c["oversubscribed"], par["oversubscribed"]);
  const double wait = par["epochs"][0]["time_breakdown_s"]["allreduce_wait"];
  EXPECT_NEAR(c["exposed_comm_fraction"]["median"].get<double>(), wait / par["train_time_s"].get<double>(), 1e-12);
  // What communication cost the cores, from the real 2-rank run: the gradient
  // thread used CPU; serially there is no such thread.
  EXPECT_GT(par["epochs"][0]["comm_cpu_s"].get<double>(), 0);
  EXPECT_EQ(serial["epochs"][0]["comm_cpu_s"].get<double>(), 0);
  EXPECT_GT(c["allreduce"]["cpu_per_step_s"].get<double>(), 0);
  if (par["epochs"][0]["compute_preempted_s"].is_number()) {  // null where the kernel keeps no schedstat
    EXPECT_GE(par["epochs"][0]["compute_preempted_s"].get<double>(), 0);
  }
  // The scaling model: calibrated, predictions up to 1024 ranks for three networks.
  const json& sm = m["scaling_model"];
  EXPECT_EQ(sm["status"], "ok") << sm.dump(2);
  ASSERT_EQ(sm["networks"].size(), 3u);
  EXPECT_EQ(sm["networks"][0]["predictions"].back()["p"], 1024);
  EXPECT_EQ(sm["calibration"]["allreduce_benchmark"]["status"], "ok") << sm["calibration"].dump(2);
  EXPECT_GT(sm["calibration"]["allreduce_benchmark"]["beta_bytes_per_s"].get<double>(), 0);
  EXPECT_TRUE(sm["calibration"].contains("training_allreduce"));

  for (const char* p : kPlots) {
    SCOPED_TRACE(p);
    const std::string png = dir + "/" + p + ".png";
    ASSERT_TRUE(fs::exists(png));
    const auto [w, h] = png_size(png);
    EXPECT_GT(w, 300u);
    EXPECT_GT(h, 300u);
    EXPECT_GT(fs::file_size(png), 5000u);
    EXPECT_TRUE(fs::exists(dir + "/plots/" + p + ".gp"));  // kept, so the user can tweak and redraw
    EXPECT_NE(read_file(dir + "/report.md").find(std::string("(") + p + ".png)"), std::string::npos);
  }
  EXPECT_TRUE(fs::exists(dir + "/logs/serial.log"));
  EXPECT_TRUE(fs::exists(dir + "/logs/parallel_2p.log"));
  expect_trace_and_timeline(dir, m);

  // --replot redraws from the JSON files alone (timeline.png from the saved trace).
  for (const char* p : kPlots) fs::remove(dir + "/" + p + ".png");
  fs::remove(dir + "/timeline.png");
  const Result again = run({binary("run_experiments"), "--replot", dir}, tmp.path);
  EXPECT_EQ(again.status, 0) << again.out << again.err;
  for (const char* p : kPlots) EXPECT_TRUE(fs::exists(dir + "/" + p + ".png")) << p;
  EXPECT_GT(png_size(dir + "/timeline.png").first, 300u);
  const json m2 = json::parse(read_file(dir + "/performance_metrics.json"));
  EXPECT_EQ(m2["configurations"], m["configurations"]);  // the same numbers, from the files alone
  EXPECT_EQ(m2["measurement"]["background_load_cores"]["n"], 2);

  // A directory written before --backends (no backend anywhere) is Gloo's, and replots as it did.
  json old = m2;
  old["experiment"]["config"].erase("backends");
  for (auto& c : old["configurations"]) c.erase("backend");
  std::ofstream(dir + "/performance_metrics.json") << old.dump(2);
  fs::remove(dir + "/speedup.png");
  const Result older = run({binary("run_experiments"), "--replot", dir}, tmp.path);
  EXPECT_EQ(older.status, 0) << older.out << older.err;
  EXPECT_TRUE(fs::exists(dir + "/speedup.png"));
  const json m3 = json::parse(read_file(dir + "/performance_metrics.json"));
  EXPECT_EQ(m3["configurations"], m["configurations"]);
  EXPECT_EQ(m3["configurations"][1]["backend"], "gloo");
  EXPECT_EQ(read_file(dir + "/report.md").find("| backend |"), std::string::npos);  // one backend: no column

  // A results file that lost a field, or is gone: --replot names it and leaves the directory as it was
  // (redrawing would record a successful run as failed).
  const std::string metrics_before = read_file(dir + "/performance_metrics.json");
  json renamed = par;
  renamed["total_time"] = renamed["total_time_s"];
  renamed.erase("total_time_s");
  std::ofstream(dir + "/parallel_2p_results.json") << renamed.dump(2);
  const Result bad = run({binary("run_experiments"), "--replot", dir}, tmp.path);
  EXPECT_EQ(bad.status, 1) << bad.out << bad.err;
  EXPECT_NE(bad.err.find(dir + "/parallel_2p_results.json: the field 'total_time_s' is missing"), std::string::npos)
      << bad.err;
  EXPECT_NE(bad.err.find("fix:"), std::string::npos) << bad.err;
  fs::remove(dir + "/parallel_2p_results.json");
  const Result gone = run({binary("run_experiments"), "--replot", dir}, tmp.path);
  EXPECT_EQ(gone.status, 1) << gone.out << gone.err;
  EXPECT_NE(gone.err.find("cannot read the results file " + dir + "/parallel_2p_results.json"), std::string::npos)
      << gone.err;
  EXPECT_EQ(read_file(dir + "/performance_metrics.json"), metrics_before);
}

TEST(Experiments, TwoBackendsRunSideBySide) {
  TempDir tmp;
  const std::string out = tmp.path + "/results";
  auto argv = tiny_suite(out);
  argv.insert(argv.begin() + 1, {"--backends", "gloo", "mpi"});
  const Result r = run(argv, tmp.path);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const auto dirs = experiment_dirs(out);
  ASSERT_EQ(dirs.size(), 1u);
  const std::string dir = dirs[0];
  EXPECT_NE(r.out.find("[run 1/3] serial"), std::string::npos) << r.out;  // the baseline once
  EXPECT_NE(r.out.find("[run 2/3] 2 processes, gloo"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[run 3/3] 2 processes, mpi"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("processes  backend"), std::string::npos) << r.out;  // the table's column
  EXPECT_NE(r.out.find("\n2 processes: "), std::string::npos) << r.out;    // the comparison

  for (const char* f : {"serial_results.json", "parallel_2p_results.json", "parallel_2p_mpi_results.json",
                        "performance_metrics.json", "report.md", "logs/serial.log", "logs/parallel_2p.log",
                        "logs/parallel_2p_mpi.log", "trace_parallel_2p.json", "trace_parallel_2p_mpi.json"})
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  for (const char* p : kPlots) {
    EXPECT_GT(png_size(dir + "/" + p + ".png").first, 300u) << p;
    EXPECT_TRUE(fs::exists(dir + "/plots/" + p + ".gp")) << p;
  }
  const json serial = json::parse(read_file(dir + "/serial_results.json"));
  const json m = json::parse(read_file(dir + "/performance_metrics.json"));
  EXPECT_EQ(m["status"], "ok");
  EXPECT_EQ(m["experiment"]["config"]["backends"], json({"gloo", "mpi"}));
  EXPECT_EQ(m["timeline"]["configuration"], "parallel_2p");  // the first backend at the fewest ranks
  ASSERT_EQ(m["configurations"].size(), 3u);
  const double ts = serial["total_time_s"];
  for (int i : {1, 2}) {
    const json& c = m["configurations"][i];
    const std::string backend = i == 1 ? "gloo" : "mpi";
    SCOPED_TRACE(backend);
    EXPECT_EQ(c["backend"], backend);
    EXPECT_EQ(c["processes"], 2);
    const json par = json::parse(read_file(dir + "/" + c["results_file"].get<std::string>()));
    EXPECT_EQ(par["config"]["backend"], backend);  // the run was on the backend it is filed under
    EXPECT_EQ(par["world_size"], 2);
    const double tp = par["total_time_s"], s = c["speedup"]["median"];
    EXPECT_NEAR(s * tp, ts, 1e-9 * ts);  // speedup x T_parallel = T_serial
    EXPECT_NEAR(c["efficiency"]["median"].get<double>(), s / 2, 1e-12);
    EXPECT_NEAR(c["throughput_samples_per_s"]["median"].get<double>(), par["throughput_samples_per_s"].get<double>(), 1e-9);
    const json& b = m["backend_comparison"][0]["backends"][backend];
    EXPECT_DOUBLE_EQ(b["total_time_s"].get<double>(), tp);
    EXPECT_DOUBLE_EQ(b["speedup"].get<double>(), s);
  }
  const json& cmp = m["backend_comparison"][0];
  EXPECT_EQ(cmp["processes"], 2);
  const double tg = cmp["backends"]["gloo"]["total_time_s"], tm = cmp["backends"]["mpi"]["total_time_s"];
  EXPECT_EQ(cmp["fastest"], tm < tg ? "mpi" : "gloo");
  EXPECT_NEAR(cmp["time_ratio"].get<double>(), std::max(tg, tm) / std::min(tg, tm), 1e-12);

  // The plots' data and scripts carry both series.
  const std::string sp = read_file(dir + "/plots/speedup.dat"), gp = read_file(dir + "/plots/speedup.gp");
  EXPECT_NE(sp.find("\"2 processes, gloo\""), std::string::npos) << sp;
  EXPECT_NE(sp.find("\"2 processes, mpi\""), std::string::npos) << sp;
  EXPECT_NE(gp.find("title 'measured, Gloo'"), std::string::npos) << gp;
  EXPECT_NE(gp.find("title 'measured, MPI'"), std::string::npos) << gp;
  EXPECT_NE(read_file(dir + "/plots/efficiency.dat").find("2 processes, mpi"), std::string::npos);
  EXPECT_NE(read_file(dir + "/plots/comparison.dat").find("2 processes, mpi"), std::string::npos);
  const std::string tb = read_file(dir + "/plots/time_breakdown.gp");
  EXPECT_NE(tb.find("gloo"), std::string::npos) << tb;
  EXPECT_NE(tb.find("mpi"), std::string::npos) << tb;
  EXPECT_NE(read_file(dir + "/plots/loss_curves.gp").find("'loss_steps_parallel_2p_mpi.dat'"), std::string::npos);
  const std::string report = read_file(dir + "/report.md");
  EXPECT_NE(report.find("| run | processes | backend |"), std::string::npos);
  EXPECT_NE(report.find("- 2 processes: "), std::string::npos);

  // --replot redraws the two backends from the files alone.
  fs::remove(dir + "/speedup.png");
  const Result again = run({binary("run_experiments"), "--replot", dir}, tmp.path);
  EXPECT_EQ(again.status, 0) << again.out << again.err;
  EXPECT_TRUE(fs::exists(dir + "/speedup.png"));
  EXPECT_EQ(json::parse(read_file(dir + "/performance_metrics.json"))["configurations"], m["configurations"]);
}

// --precision fp32 bf16: each run in both precisions side by side, each
// parallel run against the serial run of its own precision, the bf16 serial
// run against the fp32 one; the table, the report and the plots say which ran.
TEST(Experiments, TwoPrecisionsRunSideBySide) {
  TempDir tmp;
  const std::string out = tmp.path + "/results";
  auto argv = tiny_suite(out);
  argv.insert(argv.begin() + 1, {"--precision", "fp32", "bf16"});
  const Result r = run(argv, tmp.path);
  if (r.status == 1 && r.err.find("needs AVX-512") != std::string::npos) GTEST_SKIP() << "no bf16 kernels on this CPU";
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const auto dirs = experiment_dirs(out);
  ASSERT_EQ(dirs.size(), 1u);
  const std::string dir = dirs[0];
  EXPECT_NE(r.out.find("[run 1/4] serial, fp32"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[run 2/4] serial, bf16"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[run 3/4] 2 processes, fp32"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[run 4/4] 2 processes, bf16"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nserial: bf16 took "), std::string::npos) << r.out;  // the comparison
  EXPECT_NE(r.out.find("\n2 processes: bf16 took "), std::string::npos) << r.out;

  const json m = json::parse(read_file(dir + "/performance_metrics.json"));
  EXPECT_EQ(m["status"], "ok");
  EXPECT_EQ(m["experiment"]["config"]["precisions"], json({"fp32", "bf16"}));
  ASSERT_EQ(m["configurations"].size(), 4u);
  const char* names[] = {"serial", "serial_bf16", "parallel_2p", "parallel_2p_bf16"};
  std::map<std::string, json> results;
  for (int i = 0; i < 4; ++i) {
    const json& c = m["configurations"][i];
    SCOPED_TRACE(names[i]);
    EXPECT_EQ(c["name"], names[i]);
    const std::string precision = i % 2 ? "bf16" : "fp32";
    EXPECT_EQ(c["precision"], precision);
    results[names[i]] = json::parse(read_file(dir + "/" + std::string(names[i]) + "_results.json"));
    EXPECT_EQ(results[names[i]]["config"]["precision"], precision);  // the run was in the precision it is filed under
    EXPECT_NE(read_file(dir + "/logs/" + names[i] + ".log").find("--precision " + precision), std::string::npos);
  }
  auto t = [&](const char* name) { return results[name]["total_time_s"].get<double>(); };
  auto speedup = [&](int i) { return m["configurations"][i]["speedup"]["median"].get<double>(); };
  EXPECT_NEAR(speedup(1), t("serial") / t("serial_bf16"), 1e-9);                 // bf16 serial against fp32 serial
  EXPECT_NEAR(speedup(2), t("serial") / t("parallel_2p"), 1e-9);                 // each parallel run against
  EXPECT_NEAR(speedup(3), t("serial_bf16") / t("parallel_2p_bf16"), 1e-9);       // its own precision's serial run
  const json& cmp = m["precision_comparison"];
  ASSERT_EQ(cmp.size(), 2u);
  EXPECT_NEAR(cmp[1]["time_ratio"].get<double>(), t("parallel_2p") / t("parallel_2p_bf16"), 1e-9);

  const std::string report = read_file(dir + "/report.md");
  EXPECT_NE(report.find("- **Precision:** fp32 and bf16"), std::string::npos) << report;
  EXPECT_NE(report.find("| 2 processes, bf16 | 2 |"), std::string::npos) << report;
  EXPECT_NE(report.find("- 2 processes: bf16 took "), std::string::npos) << report;
  const std::string gp = read_file(dir + "/plots/speedup.gp");
  EXPECT_NE(gp.find("title 'measured, fp32'"), std::string::npos) << gp;
  EXPECT_NE(gp.find("title 'measured, bf16'"), std::string::npos) << gp;
  EXPECT_NE(read_file(dir + "/plots/efficiency.dat").find("2 processes, bf16"), std::string::npos);
  EXPECT_EQ(m["scaling_model"]["measured_precision"], "fp32");  // the model is fp32's

  // --replot redraws both precisions from the files alone.
  fs::remove(dir + "/speedup.png");
  const Result again = run({binary("run_experiments"), "--replot", dir}, tmp.path);
  EXPECT_EQ(again.status, 0) << again.out << again.err;
  EXPECT_TRUE(fs::exists(dir + "/speedup.png"));
  EXPECT_EQ(json::parse(read_file(dir + "/performance_metrics.json"))["configurations"], m["configurations"]);
}

// --variant NAME="FLAGS": each parallel run once per variant, its flags
// added to train_parallel's, one serial baseline; the files, labels, metrics,
// report and plots name the variant, with the bytes each all-reduced per step.
TEST(Experiments, VariantsRunSideBySide) {
  TempDir tmp;
  const std::string out = tmp.path + "/results";
  auto argv = tiny_suite(out);
  argv.insert(argv.begin() + 1, {"--variant", "plain=", "--variant", "acc2=--accumulate '2'"});
  const Result r = run(argv, tmp.path);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const auto dirs = experiment_dirs(out);
  ASSERT_EQ(dirs.size(), 1u);
  const std::string dir = dirs[0];
  EXPECT_NE(r.out.find("[run 1/3] serial"), std::string::npos) << r.out;  // the baseline once
  EXPECT_NE(r.out.find("[run 2/3] 2 processes, plain"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[run 3/3] 2 processes, acc2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n2 processes, acc2 (`--accumulate '2'`): speedup "), std::string::npos) << r.out;

  const json m = json::parse(read_file(dir + "/performance_metrics.json"));
  EXPECT_EQ(m["status"], "ok");
  EXPECT_EQ(m["experiment"]["config"]["variants"], json({{"plain", ""}, {"acc2", "--accumulate '2'"}}));
  ASSERT_EQ(m["configurations"].size(), 3u);
  EXPECT_FALSE(m["configurations"][0].contains("variant"));  // the serial run is no variant's
  std::map<std::string, json> results;
  for (int i : {1, 2}) {
    const json& c = m["configurations"][i];
    const std::string v = i == 1 ? "plain" : "acc2";
    SCOPED_TRACE(v);
    EXPECT_EQ(c["variant"], v);
    EXPECT_EQ(c["name"], "parallel_2p_" + v);
    EXPECT_EQ(c["label"], "2 processes, " + v);
    EXPECT_EQ(c["results_file"], "parallel_2p_" + v + "_results.json");
    results[v] = json::parse(read_file(dir + "/parallel_2p_" + v + "_results.json"));
    // The bytes as train_parallel counted them, carried into the metrics.
    const double bytes = results[v]["allreduce"]["bytes_per_step"];
    EXPECT_GT(bytes, 0);
    EXPECT_DOUBLE_EQ(c["allreduce"]["bytes_per_step"].get<double>(), bytes);
    const std::string log = read_file(dir + "/logs/parallel_2p_" + v + ".log");
    EXPECT_EQ(log.find("--accumulate 2") != std::string::npos, v == "acc2") << log;
  }
  EXPECT_EQ(results["acc2"]["config"].value("accumulate", 1), 2);   // the flags reached the run, unquoted
  EXPECT_EQ(results["plain"]["config"].value("accumulate", 1), 1);  // and only its own run

  const std::string report = read_file(dir + "/report.md");
  EXPECT_NE(report.find("**Variants compared.**"), std::string::npos) << report;
  EXPECT_NE(report.find("- **2 processes, plain** (no extra flags): speedup "), std::string::npos) << report;
  EXPECT_NE(report.find("(the reference of the bytes saved)"), std::string::npos) << report;
  EXPECT_NE(report.find("- **2 processes, acc2** (`--accumulate '2'`): speedup "), std::string::npos) << report;
  EXPECT_NE(report.find("bytes than plain"), std::string::npos) << report;
  EXPECT_NE(report.find("](variants.png)"), std::string::npos) << report;
  const std::string gp = read_file(dir + "/plots/speedup.gp");
  EXPECT_NE(gp.find("title 'measured, plain'"), std::string::npos) << gp;
  EXPECT_NE(gp.find("title 'measured, acc2'"), std::string::npos) << gp;
  EXPECT_GT(png_size(dir + "/variants.png").first, 300u);
  EXPECT_TRUE(fs::exists(dir + "/plots/time_to_accuracy_parallel_2p_acc2.dat"));
  // Under the bars, the variant and N: "2 processes, acc2" overlapped its neighbours.
  const std::string vgp = read_file(dir + "/plots/variants.gp");
  EXPECT_NE(vgp.find("\"plain\\n2p\" 0, \"acc2\\n2p\" 1"), std::string::npos) << vgp;
}

// A bad --variant is refused before any run: command substitution, bad
// quoting, a bad or repeated name, flags train_parallel refuses.
TEST(Experiments, BadVariantIsRefusedBeforeAnyRun) {
  TempDir tmp;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"x=$(ls)"}, "command substitution"},
      {{"x=--accumulate `ls`"}, "command substitution"},
      {{"x=--accumulate \"2"}, "quoting is unbalanced"},
      {{"bad name=--accumulate 2"}, "--variant name 'bad name'"},
      {{"acc2"}, "has no NAME="},
      {{"a=", "a=--accumulate 2"}, "--variant a is given twice"},
      {{"u=--no-such-flag"}, "train_parallel refuses it"},
      {{"s=--accumulate 2 --sync-every 4"}, "cannot be combined"},
      // Flags the suite gives every run itself, named, in any spelling:
      {{"e=--epochs 3"}, "--variant e gives --epochs, which run_experiments gives every run itself"},
      {{"e=-e 3"}, "--variant e gives -e, which run_experiments gives every run itself"},
      {{"b=--batch-size=32"}, "--variant b gives --batch-size, which run_experiments gives every run itself"},
  };
  for (const auto& [variants, expected] : cases) {
    SCOPED_TRACE(variants.back());
    std::vector<std::string> argv = {binary("run_experiments"), "-o", tmp.path + "/out", "--data-dir", mnist_dir()};
    for (const auto& v : variants) argv.insert(argv.end(), {"--variant", v});
    const Result r = run(argv, tmp.path);
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("fix: "), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("[run "), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(tmp.path + "/out"));
  }
}

TEST(Experiments, UnknownOrUnsupportedPrecisionIsRefusedBeforeAnyRun) {
  TempDir tmp;
  const Result r = run({binary("run_experiments"), "--precision", "fp32,fp16", "-o", tmp.path + "/out", "--data-dir",
                        mnist_dir()},
                       tmp.path);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("unknown precision 'fp16'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("fix: use --precision fp32"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp.path + "/out"));
  // A CPU without AVX-512 (as oneDNN is told to see it) has no bf16 kernels.
  const Result old = run({binary("run_experiments"), "--precision", "bf16", "-o", tmp.path + "/out", "--data-dir",
                          mnist_dir()},
                         tmp.path, {{"ONEDNN_MAX_CPU_ISA", "AVX2"}});
  EXPECT_EQ(old.status, 1) << old.out << old.err;
  EXPECT_NE(old.err.find("needs AVX-512"), std::string::npos) << old.err;
  EXPECT_NE(old.err.find("--precision fp32"), std::string::npos) << old.err;
  EXPECT_EQ(old.out.find("[run "), std::string::npos) << old.out;
  EXPECT_FALSE(fs::exists(tmp.path + "/out"));
}

TEST(Experiments, UnknownBackendIsRefusedBeforeAnyRun) {
  TempDir tmp;
  for (const char* b : {"foo", "gloo,nccl"}) {
    const Result r = run({binary("run_experiments"), "--backends", b, "-o", tmp.path + "/out"}, tmp.path);
    EXPECT_EQ(r.status, 1) << b << ": " << r.out << r.err;
    EXPECT_NE(r.err.find("unknown backend '" + std::string(b == std::string("foo") ? "foo" : "nccl") + "'"),
              std::string::npos) << r.err;
    EXPECT_NE(r.err.find("fix: use --backends gloo"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(tmp.path + "/out")) << b;
  }
}

TEST(Experiments, MissingMpirunIsReportedBeforeAnyRun) {
  TempDir tmp;
  // mpirun is looked up in $PATH; an empty one has none.
  const Result r = run({binary("run_experiments"), "--backends", "gloo", "mpi", "-o", tmp.path + "/out", "--data-dir",
                        mnist_dir()},
                       tmp.path, {{"PATH", tmp.path + "/empty-bin"}});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("mpirun"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("apt-get install openmpi-bin libopenmpi-dev"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("[run "), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(tmp.path + "/out"));
}

TEST(Experiments, BadProcessCountsAreRefused) {
  TempDir tmp;
  for (const char* p : {"0", "65", "-3", "two"}) {
    const Result r = run({binary("run_experiments"), "-p", "2", p, "-o", tmp.path + "/out"}, tmp.path);
    EXPECT_NE(r.status, 0) << p << ": " << r.out << r.err;
    EXPECT_NE((r.out + r.err).find("process-counts"), std::string::npos) << p << ": " << r.out << r.err;
    EXPECT_FALSE(fs::exists(tmp.path + "/out")) << p;
  }
}

TEST(Experiments, MissingDataIsReportedBeforeAnyRun) {
  TempDir tmp;
  const Result r = run({binary("run_experiments"), "-e", "1", "-o", tmp.path + "/out", "--data-dir", tmp.path + "/nope"},
                       tmp.path);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("fix:"), std::string::npos) << r.err;
  EXPECT_TRUE(experiment_dirs(tmp.path + "/out").empty());
  EXPECT_EQ(r.out.find("[run "), std::string::npos) << r.out;
}

TEST(Experiments, UnwritableOutputDirectoryIsReportedBeforeAnyRun) {
  TempDir tmp;
  std::ofstream(tmp.path + "/a-file") << "x";
  const Result r = run({binary("run_experiments"), "-e", "1", "-o", tmp.path + "/a-file/results", "--data-dir", mnist_dir()},
                       tmp.path);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("a-file/results"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--output-dir"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("[run "), std::string::npos) << r.out;

  if (geteuid() != 0) {  // root writes anywhere; the permission case needs a normal user
    fs::create_directories(tmp.path + "/ro");
    chmod((tmp.path + "/ro").c_str(), 0555);
    const Result ro = run({binary("run_experiments"), "-e", "1", "-o", tmp.path + "/ro", "--data-dir", mnist_dir()}, tmp.path);
    EXPECT_EQ(ro.status, 1) << ro.out << ro.err;
    EXPECT_EQ(ro.out.find("[run "), std::string::npos) << ro.out;
  }
}

TEST(Experiments, WithoutGnuplotTheJsonIsStillWrittenAndTheExitIsNonZero) {
  TempDir tmp;
  const std::string out = tmp.path + "/results";
  // Only gnuplot is looked up in $PATH: the trainers are run from run_experiments' own directory.
  const Result r = run(tiny_suite(out), tmp.path, {{"PATH", tmp.path + "/empty-bin"}});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("apt-get install gnuplot-nox"), std::string::npos) << r.err;
  const auto dirs = experiment_dirs(out);
  ASSERT_EQ(dirs.size(), 1u);
  for (const char* f : {"serial_results.json", "parallel_2p_results.json", "performance_metrics.json", "report.md"})
    EXPECT_TRUE(fs::exists(dirs[0] + "/" + f)) << f;
  EXPECT_EQ(json::parse(read_file(dirs[0] + "/performance_metrics.json"))["status"], "ok");
  for (const char* p : kPlots) EXPECT_FALSE(fs::exists(dirs[0] + "/" + p + ".png")) << p;
  EXPECT_NE(read_file(dirs[0] + "/report.md").find("gnuplot-nox"), std::string::npos);
}

namespace {

// run_experiments runs the trainers that sit next to it: returns a directory
// with a copy of it next to the real train_serial and a train_parallel that
// exits with `status` and prints `error` when its arguments contain `args`.
std::string failing_parallel_bin(const std::string& tmp, const std::string& args, const std::string& error, int status) {
  const std::string bin = tmp + "/bin";
  fs::create_directories(bin);
  fs::copy_file(binary("run_experiments"), bin + "/run_experiments");
  fs::create_symlink(binary("train_serial"), bin + "/train_serial");
  {
    std::ofstream s(bin + "/train_parallel");
    s << "#!/bin/sh\n"
         "case \" $* \" in *\" " << args << " \"*) echo 'train_parallel: error: " << error << "' >&2; exit " << status
      << ";; esac\n"
         "exec '" << binary("train_parallel") << "' \"$@\"\n";
  }
  fs::permissions(bin + "/train_parallel", fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  return bin;
}

}  // namespace

TEST(Experiments, AFailedRunIsRecordedAndTheOthersGoOn) {
  // A train_parallel that fails for 1 process only.
  TempDir tmp;
  const std::string bin = failing_parallel_bin(tmp.path, "--world-size 1", "simulated failure of rank 0", 3);
  const std::string out = tmp.path + "/results";
  const Result r = run({bin + "/run_experiments", "--limit", "640", "-e", "1", "-p", "1", "2", "-o", out, "--data-dir",
                        mnist_dir()},
                       tmp.path);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("FAILED (exit status 3)"), std::string::npos) << r.out;
  const auto dirs = experiment_dirs(out);
  ASSERT_EQ(dirs.size(), 1u);
  const json m = json::parse(read_file(dirs[0] + "/performance_metrics.json"));
  EXPECT_EQ(m["status"], "failed");
  EXPECT_EQ(m["failed_runs"], 1);
  ASSERT_EQ(m["configurations"].size(), 3u);
  EXPECT_EQ(m["configurations"][0]["status"], "ok");
  const json& bad = m["configurations"][1];
  EXPECT_EQ(bad["processes"], 1);
  EXPECT_EQ(bad["status"], "failed");
  EXPECT_EQ(bad["runs"][0]["exit_status"], 3);
  EXPECT_NE(bad["runs"][0]["error"].get<std::string>().find("simulated failure"), std::string::npos);
  EXPECT_TRUE(bad["speedup"]["median"].is_null());
  EXPECT_EQ(m["configurations"][2]["status"], "ok");  // the run after the failure went on
  EXPECT_TRUE(m["configurations"][2]["speedup"]["median"].is_number());
  EXPECT_TRUE(fs::exists(dirs[0] + "/serial_results.json"));
  EXPECT_FALSE(fs::exists(dirs[0] + "/parallel_1p_results.json"));
  EXPECT_TRUE(fs::exists(dirs[0] + "/parallel_2p_results.json"));
  EXPECT_TRUE(fs::exists(dirs[0] + "/speedup.png"));  // the plots show what succeeded
  EXPECT_NE(read_file(dirs[0] + "/report.md").find("FAILED"), std::string::npos);
}

TEST(Experiments, AFailedBackendIsRecordedAndTheOtherGoesOn) {
  // A train_parallel that fails on the mpi backend only.
  TempDir tmp;
  const std::string bin = failing_parallel_bin(tmp.path, "--backend mpi", "simulated MPI failure", 4);
  const std::string out = tmp.path + "/results";
  const Result r = run({bin + "/run_experiments", "--backends", "mpi,gloo", "--limit", "640", "-e", "1", "-p", "2", "-o",
                        out, "--data-dir", mnist_dir()},
                       tmp.path);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("[run 2/3] 2 processes, mpi"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FAILED (exit status 4)"), std::string::npos) << r.out;
  const auto dirs = experiment_dirs(out);
  ASSERT_EQ(dirs.size(), 1u);
  const json m = json::parse(read_file(dirs[0] + "/performance_metrics.json"));
  EXPECT_EQ(m["failed_runs"], 1);
  ASSERT_EQ(m["configurations"].size(), 3u);
  const json& mpi = m["configurations"][1];
  EXPECT_EQ(mpi["backend"], "mpi");
  EXPECT_EQ(mpi["status"], "failed");
  EXPECT_NE(mpi["runs"][0]["error"].get<std::string>().find("simulated MPI failure"), std::string::npos);
  const json& gloo = m["configurations"][2];  // the run after the failure went on
  EXPECT_EQ(gloo["backend"], "gloo");
  EXPECT_EQ(gloo["status"], "ok");
  EXPECT_TRUE(gloo["speedup"]["median"].is_number());
  EXPECT_TRUE(m["backend_comparison"][0]["fastest"].is_null());
  EXPECT_TRUE(fs::exists(dirs[0] + "/speedup.png"));
  const std::string report = read_file(dirs[0] + "/report.md");
  EXPECT_NE(report.find("**FAILED:** 2 processes, mpi"), std::string::npos) << report;
  EXPECT_NE(report.find("no comparison (MPI failed)"), std::string::npos) << report;
}
