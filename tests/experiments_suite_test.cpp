// run_experiments end to end: a tiny real suite (real MNIST, real processes),
// its files, their consistency, and the bad input it must refuse up front.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

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

struct TempDir {
  std::string path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "experiments-test-XXXXXX").string();
    path = mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

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

std::vector<std::string> tiny_suite(const std::string& out) {
  return {binary("run_experiments"), "--limit", "640", "-e", "1", "-p", "2", "-o", out, "--data-dir", mnist_dir()};
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
    EXPECT_TRUE(fs::exists(dir + "/" + p + ".gp"));  // kept, so the user can tweak and redraw
    EXPECT_NE(read_file(dir + "/report.md").find(std::string("(") + p + ".png)"), std::string::npos);
  }
  EXPECT_TRUE(fs::exists(dir + "/logs/serial.log"));
  EXPECT_TRUE(fs::exists(dir + "/logs/parallel_2p.log"));

  // --replot redraws from the JSON files alone.
  for (const char* p : kPlots) fs::remove(dir + "/" + p + ".png");
  const Result again = run({binary("run_experiments"), "--replot", dir}, tmp.path);
  EXPECT_EQ(again.status, 0) << again.out << again.err;
  for (const char* p : kPlots) EXPECT_TRUE(fs::exists(dir + "/" + p + ".png")) << p;
  const json m2 = json::parse(read_file(dir + "/performance_metrics.json"));
  EXPECT_EQ(m2["configurations"], m["configurations"]);  // the same numbers, from the files alone
  EXPECT_EQ(m2["measurement"]["background_load_cores"]["n"], 2);
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

TEST(Experiments, AFailedRunIsRecordedAndTheOthersGoOn) {
  // run_experiments runs the trainers that sit next to it: a copy of it next to
  // the real train_serial and a train_parallel that fails for 1 process only.
  TempDir tmp;
  const std::string bin = tmp.path + "/bin";
  fs::create_directories(bin);
  fs::copy_file(binary("run_experiments"), bin + "/run_experiments");
  fs::create_symlink(binary("train_serial"), bin + "/train_serial");
  {
    std::ofstream s(bin + "/train_parallel");
    s << "#!/bin/sh\n"
         "case \" $* \" in *\" --world-size 1 \"*) echo 'train_parallel: error: simulated failure of rank 0' >&2; exit 3;; esac\n"
         "exec '" << binary("train_parallel") << "' \"$@\"\n";
  }
  fs::permissions(bin + "/train_parallel", fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
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
