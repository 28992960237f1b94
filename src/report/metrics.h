// What parallelism buys, computed from the trainers' results files: speedup,
// efficiency, throughput, accuracy, exposed communication, and the
// median / min / max of each over repeated runs.
//
// Definitions (the README states them too):
//   speedup(N)    = T_serial / T_parallel(N), T = total_time_s (training +
//                   evaluation of every epoch, the same work: every sample of
//                   every epoch once, the whole test set after each epoch)
//   efficiency(N) = speedup(N) / N
//   exposed communication fraction = sum of allreduce_wait (the all-reduce
//                   time backward did not hide, mean over ranks) / train_time_s
// With repeats, "median" is the ratio of the medians; "min" and "max" are the
// extreme pairwise ratios (slowest parallel vs fastest serial, and the
// converse), so the range covers the noise of both.
#pragma once
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "results/run_result.h"

namespace ddp::report {

struct Summary {
  double median = 0, min = 0, max = 0;
  int n = 0;  // values summarised; 0: none (then median/min/max are NaN)
};

// Median (mean of the middle two for an even count), min and max.
Summary summarize(std::vector<double> values);
nlohmann::json to_json(const Summary& s);  // {median, min, max, n}; NaN as null

double speedup(double t_serial, double t_parallel);
double efficiency(double speedup, int processes);
// speedup of each pairing: median = med(serial)/med(parallel), min = min(serial)/max(parallel), max = max(serial)/min(parallel).
Summary speedup_summary(const Summary& t_serial, const Summary& t_parallel);
Summary efficiency_summary(const Summary& speedup, int processes);

// Sums over the epochs of a results file (time_breakdown_s, mean over ranks).
struct PhaseSums {
  double data = 0, forward = 0, backward = 0, allreduce_wait = 0, optimizer = 0, other = 0;
  double eval = 0, train = 0;  // eval_time_s and train_time_s summed over epochs
  double allreduce_busy = 0;
  double comm_cpu = 0, compute_preempted = 0;  // NaN when a results file does not say (older files)
  int epochs = 0;
};
PhaseSums phase_sums(const ddp::results::RunResult& r);
double exposed_comm_fraction(const ddp::results::RunResult& r);

// One execution of a trainer.
struct RunRecord {
  int repeat = 1;            // 1-based
  std::string results_file;  // relative to the experiment directory
  std::string log_file;      // relative to the experiment directory
  std::string trace_file;    // its --trace file, relative to the experiment directory; "" when it wrote none
  bool ok = false;
  int exit_status = -1;      // as a shell reports it: code, or 128 + signal
  std::string error;         // the run's last error lines when it failed
  double wall_s = 0;         // as seen from run_experiments (process start to exit)
  // CPU time other processes (not this run) used during the run, in cores
  // (e.g. 0.5: half a core busy elsewhere on average); NaN when unknown.
  double background_cores = std::numeric_limits<double>::quiet_NaN();
  ddp::results::RunResult results;  // the results file (meaningful when ok)
};

// One configuration: the serial baseline, or train_parallel with N processes
// on one communication backend.
struct Configuration {
  // "serial", "parallel_2p", "parallel_2p_mpi", "parallel_2p_bf16", "parallel_2p_powersgd": prefix of its files
  std::string name;
  std::string label;         // "serial", "2 processes", "2 processes, bf16", "2 processes, powersgd"
  std::string program;       // "train_serial" / "train_parallel"
  std::string backend;       // train_parallel's --backend: "gloo", "mpi"; "" for the serial run
  std::string precision = "fp32";  // the trainers' --precision: "fp32", "bf16"
  // run_experiments --variant's name (extra train_parallel flags); "" for the
  // serial run and the suite without --variant.
  std::string variant;
  int processes = 1;
  std::string results_file;  // the canonical file: serial_results.json, parallel_2p_results.json
  std::vector<RunRecord> runs;

  // The serial baseline of a precision: named "serial" (fp32) or
  // "serial_<precision>" (suite.h's names).
  bool is_serial() const;
  bool any_ok() const;
  // The successful run whose total time is the (lower) median; -1 if none.
  int representative() const;
  const ddp::results::RunResult* representative_results() const;
};

// Metrics of one configuration ("configurations" entries of
// performance_metrics.json); `serial`: its baseline (baseline_of), may be
// null (no baseline: speedups null).
nlohmann::json configuration_metrics(const Configuration& c, const Configuration* serial);

// The communication backend of a "configurations" entry: "" for the serial
// run; "gloo" for a parallel entry without one (written before run_experiments
// could choose).
std::string backend_of(const nlohmann::json& configuration);
// The backends of the parallel configurations, each once, in order.
std::vector<std::string> backends(const nlohmann::json& metrics);
// Whether labels and tables name the backend: when any other than the default
// (gloo) ran, so that a default experiment reads as it always did.
bool names_backends(const nlohmann::json& metrics);
// The entry's label, with its backend when `with_backend`: "2 processes, mpi".
std::string run_label(const nlohmann::json& configuration, bool with_backend);
// "Gloo", "MPI", as prose names them.
std::string backend_name(const std::string& backend);

// Whether a "configurations" entry is a serial baseline (Configuration::is_serial).
bool is_serial(const nlohmann::json& configuration);
// The precision of a "configurations" entry: "fp32" for an entry without one
// (written before run_experiments could choose).
std::string precision_of(const nlohmann::json& configuration);
// The precisions of the configurations, each once, in order.
std::vector<std::string> precisions(const nlohmann::json& metrics);
// Whether labels and the report name the precision: when any other than fp32 ran.
bool names_precisions(const nlohmann::json& metrics);
// The baseline `c`'s speedup is measured against: for a parallel run, the
// serial run of its precision; for a serial run, the fp32 serial run (itself
// when it is that one, or when there is none). Null when there is none.
const Configuration* baseline_of(const std::vector<Configuration>& configs, const Configuration& c);

// For each run (the serial run, and each process count on each backend) that
// ran in both fp32 and bf16, in the order of the configurations:
// {"label", "processes", "backend" (null for the serial run), "precisions":
// {precision: {"status", medians of "total_time_s", "speedup",
// "throughput_samples_per_s", "final_test_accuracy"}}, "time_ratio" =
// T_fp32 / T_bf16, "throughput_ratio" = throughput_bf16 / throughput_fp32,
// "accuracy_difference" = accuracy_bf16 - accuracy_fp32 (null unless both
// succeeded)}.
nlohmann::json precision_comparison(const nlohmann::json& configurations);
// One sentence per entry of precision_comparison: how much faster bf16 was, and what it cost in accuracy.
std::vector<std::string> precision_comparison_sentences(const nlohmann::json& comparison);
// report.md's words for them: which precision ran ("fp32", "bf16 mixed
// precision (...)", or both side by side), and the comparison as a paragraph
// and a list ("" without one).
std::string precision_description(const nlohmann::json& metrics);
std::string precision_comparison_markdown(const nlohmann::json& metrics);

// The variant of a "configurations" entry (run_experiments --variant): "" for
// the serial run and an entry without one.
std::string variant_of(const nlohmann::json& configuration);
// The variants of the parallel configurations, each once, in order.
std::vector<std::string> variants(const nlohmann::json& metrics);
// Whether labels and the report name the variant: when --variant was given.
bool names_variants(const nlohmann::json& metrics);
// Whether `c` is a serial run or a run of the first variant of
// `configurations`: the runs the backend and precision comparisons and the
// scaling model use (the other variants change what they compare).
bool in_first_variant(const nlohmann::json& configurations, const nlohmann::json& c);
// One line per parallel run when names_variants: its label and flags, speedup,
// final test accuracy, allreduce.bytes_per_step and the bytes saved against
// the first variant's run of the same N, backend and precision. Markdown;
// "" / none without variants.
std::vector<std::string> variant_comparison_lines(const nlohmann::json& metrics);
std::string variant_comparison_markdown(const nlohmann::json& metrics);

// For each process count that ran on more than one backend (in increasing
// order): {"processes", "backends": {backend: {"status", medians of
// "total_time_s", "speedup", "efficiency", "throughput_samples_per_s",
// "final_test_accuracy", "exposed_comm_fraction", "allreduce_busy_per_step_s"}},
// "fastest", "slowest" (null unless two succeeded), "time_ratio" =
// T_slowest / T_fastest}.
nlohmann::json backend_comparison(const nlohmann::json& configurations);
// One sentence per entry of backend_comparison: which backend was faster and by how much.
std::vector<std::string> backend_comparison_sentences(const nlohmann::json& comparison);

// The results table as text (for the terminal) and as Markdown; with a
// backend column when names_backends(metrics).
std::string results_table_text(const nlohmann::json& metrics);
std::string results_table_markdown(const nlohmann::json& metrics);

// printf(printf_format, v) for one double (e.g. "%.2f s"); "n/a" when v is NaN or infinite.
std::string format_value(const char* printf_format, double v);

// printf("%.<digits>f").
std::string format_number(double v, int digits);

// Formats: "1:05" (m:ss) or "1:02:03".
std::string format_duration(double seconds);

}  // namespace ddp::report
