// The results file's schema (src/results/run_result.h): every field written
// is read back; a missing, renamed or mistyped required field is an error
// naming the field and the file; files written before the optional fields
// existed read with the stated defaults; the trainers' own files load and are
// written back byte for byte.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "results/json_reader.h"
#include "results/run_result.h"
#include "test_util.h"

using namespace ddp::results;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) { return std::string(DDP_SOURCE_DIR) + "/tests/fixtures/" + name; }

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

using test_util::TempDir;

// Every field different from its default (and from the other fields), so that
// a field the reader drops, or reads into the wrong member, shows.
RunResult every_field_set() {
  double v = 1.5;
  const auto next = [&v] { return v += 0.25; };
  const auto phases = [&] { return PhaseTimes{next(), next(), next(), next(), next(), next()}; };
  RunResult r;
  r.program = "train_parallel";
  r.config = {3, 32, next(), next(), "fashion-mnist", "/data", 640, 7, 0.25f, 2, 4, "mpi", "linear", 1, 128,
              "ring", "powersgd", "none", next(), "/ckpt", 2, "auto", "bf16", 3, 8, 40, 1, 4, 250};
  r.world_size = 4;
  r.threads_per_process = 2;
  r.oversubscribed = true;
  r.backend = "mpi";
  r.machine = {{"cores", 2}, {"hostname", "h"}};
  r.versions = {{"onednn", "2.6.0"}};
  r.train_samples = 640;
  r.test_samples = 100;
  r.steps_per_epoch = 3;
  r.samples_per_epoch = 768;
  r.num_params = 421642;
  r.data_checksum = 0xfedcba9876543210ull;  // above INT64_MAX: an unsigned field
  r.bucket_bytes = 65536;
  r.num_buckets = 5;
  r.overlap = "thread";
  r.comm_priority = "realtime";
  r.binding = "core 1";
  r.bytes_per_step = next();
  r.bytes_per_epoch = next();
  r.resumed_from = "/ckpt/epoch_1.safetensors";
  r.config.precision = "bf16";
  r.onednn = {{"isa", "avx512_core_amx"}, {"implementations", {{"conv1.forward", "jit:avx512_core"}}}};
  r.resumed_world_size = 8;
  r.restarts = {{1, next(), 1, "killed by signal 9 (SIGKILL)", 37, 12, next(), next(), next(), 2},
                {2, next(), 0, "exited with status 1", 80, 3, next(), next(), next(), 1}};
  for (int e = 1; e <= 2; ++e) {
    EpochRecord x;
    x.epoch = e;
    x.loss = next(), x.test_loss = next(), x.test_accuracy = next(), x.train_time_s = next();
    x.eval_time_s = next(), x.time_s = next(), x.samples_per_s = next(), x.learning_rate = next();
    x.phases = phases();
    x.allreduce_busy_s = next(), x.comm_cpu_s = next(), x.compute_preempted_s = next(), x.median_step_s = next();
    x.allreduce_bytes = next(), x.optimizer_steps = 10 + e;
    r.epochs.push_back(x);
  }
  r.per_rank = {{phases(), phases()}, {phases(), phases()}};
  r.step_losses = {2.25f, 1.5f, 0.75f};
  r.layer_times_s = {{"conv1", {next(), next()}}, {"fc2", {next(), next()}}};
  r.startup_s = next();
  r.final_test_accuracy = next();
  r.total_time_s = next();
  r.train_time_s = next();
  r.throughput = next();
  return r;
}

// The fields files lack that were written before these existed (the schema's optional ones).
const std::set<std::string> kOptional = {
    "config.allreduce_algorithm", "config.grad_compression",  "config.overlap",
    "config.checkpoint_dir",      "config.checkpoint_every",  "config.resume",
    "allreduce.overlap",          "allreduce.comm_priority",  "allreduce.binding",
    "resumed_from",               "epochs[0].comm_cpu_s",     "epochs[0].compute_preempted_s",
    "epochs[0].median_step_s",    "epochs[0].allreduce_wait_split_s",
    "config.precision",           "onednn",
    "config.accumulate",          "config.sync_every",        "config.local_sgd_warmup_steps",
    "config.stale_gradients",     "allreduce.bytes_per_step", "allreduce.bytes_per_epoch",
    "epochs[0].allreduce_bytes",  "epochs[0].optimizer_steps",
    "config.powersgd_rank",       "config.powersgd_start_step",
    "restarts",                   "resumed_world_size",       "restarts[0].world_size",
    "config.test_limit"};

// Every member of `j`, with the path the schema's errors give it, in objects
// of objects and in the first element of arrays of objects; free-form
// objects (machine, versions, onednn) count as one field; the entries of
// layer_times_s (one per layer, named after it) are not fields, their members are.
void members(const json& j, const std::string& path, std::vector<std::string>& out) {
  for (const auto& [key, value] : j.items()) {
    const std::string p = path.empty() ? key : path + "." + key;
    if (path != "layer_times_s") out.push_back(p);
    if (p == "machine" || p == "versions" || p == "onednn") continue;
    if (value.is_object()) members(value, p, out);
    if (value.is_array() && !value.empty() && value[0].is_object()) members(value[0], p + "[0]", out);
  }
}

// `j` without the member at `path` ("a.b[0].c").
json without(json j, const std::string& path) {
  json* at = &j;
  std::string rest = path;
  for (size_t dot; (dot = rest.find('.')) != std::string::npos; rest = rest.substr(dot + 1)) {
    std::string key = rest.substr(0, dot);
    const size_t bracket = key.find('[');
    at = &(*at)[key.substr(0, bracket)];
    if (bracket != std::string::npos) at = &(*at)[0];
  }
  at->erase(rest);
  return j;
}

}  // namespace

TEST(ResultsSchema, EveryFieldSurvivesTheRoundTrip) {
  const RunResult r = every_field_set();
  const json j = to_json(r);
  const RunResult back = run_result_from_json(j, "round trip");
  EXPECT_TRUE(back == r);
  EXPECT_EQ(back.config, r.config);
  EXPECT_EQ(back.epochs, r.epochs);
  EXPECT_EQ(back.per_rank, r.per_rank);
  EXPECT_EQ(back.layer_times_s, r.layer_times_s);
  EXPECT_EQ(back.data_checksum, 0xfedcba9876543210ull);
  EXPECT_EQ(to_json(back), j);
  EXPECT_EQ(j["throughput_samples_per_s"], r.throughput);  // the JSON keeps the file's names
  EXPECT_EQ(j["allreduce"]["binding"], "core 1");
  EXPECT_EQ(j["per_rank"][1]["rank"], 1);
}

TEST(ResultsSchema, NaNIsWrittenAsNullAndReadBack) {
  RunResult r = every_field_set();
  r.epochs[0].comm_cpu_s = NAN;
  r.epochs[1].loss = NAN;
  r.step_losses[1] = NAN;
  const json j = json::parse(to_json(r).dump());  // as a file holds it
  EXPECT_TRUE(j["epochs"][0]["comm_cpu_s"].is_null());
  const RunResult back = run_result_from_json(j, "nan");
  EXPECT_TRUE(std::isnan(back.epochs[0].comm_cpu_s));
  EXPECT_TRUE(std::isnan(back.epochs[1].loss));
  EXPECT_TRUE(std::isnan(back.step_losses[1]));
  EXPECT_EQ(back.step_losses[2], 0.75f);
}

TEST(ResultsSchema, AMissingRequiredFieldNamesTheFieldAndTheFile) {
  TempDir tmp;
  const json full = to_json(every_field_set());
  std::vector<std::string> paths;
  members(full, "", paths);
  ASSERT_GT(paths.size(), 80u);
  int required = 0;
  for (const auto& path : paths) {
    SCOPED_TRACE(path);
    const std::string file = tmp.path + "/results.json";
    std::ofstream(file) << without(full, path).dump(2);
    if (kOptional.count(path)) {
      EXPECT_NO_THROW(read_results_file(file));
      continue;
    }
    ++required;
    try {
      read_results_file(file);
      ADD_FAILURE() << "read without " << path;
    } catch (const SchemaError& e) {
      EXPECT_EQ(e.field(), path);
      EXPECT_EQ(e.source(), file);
      const std::string what = e.what();
      EXPECT_NE(what.find("'" + path + "'"), std::string::npos) << what;
      EXPECT_NE(what.find(file), std::string::npos) << what;
      EXPECT_NE(what.find("missing"), std::string::npos) << what;
      EXPECT_FALSE(e.hint().empty());
    }
  }
  EXPECT_EQ(required + kOptional.size(), paths.size());
}

TEST(ResultsSchema, ARenamedOrMistypedFieldIsAnError) {
  json j = to_json(every_field_set());
  j["total_time"] = j["total_time_s"];
  j.erase("total_time_s");
  try {
    run_result_from_json(j, "renamed.json");
    ADD_FAILURE() << "read a file without total_time_s";
  } catch (const SchemaError& e) {
    EXPECT_STREQ(e.what(), "renamed.json: the field 'total_time_s' is missing");
  }

  j = to_json(every_field_set());
  j["epochs"][1]["time_breakdown_s"]["backward"] = "slow";
  try {
    run_result_from_json(j, "typed.json");
    ADD_FAILURE() << "read a string as a number";
  } catch (const SchemaError& e) {
    EXPECT_EQ(e.field(), "epochs[1].time_breakdown_s.backward");
    EXPECT_NE(std::string(e.what()).find("is string \"slow\", expected a number"), std::string::npos) << e.what();
  }

  for (const auto& [key, bad] : std::vector<std::pair<std::string, json>>{
           {"world_size", 2.5}, {"num_params", -1}, {"oversubscribed", 1}, {"program", nullptr}, {"epochs", json::object()}}) {
    SCOPED_TRACE(key);
    j = to_json(every_field_set());
    j[key] = bad;
    EXPECT_THROW(run_result_from_json(j, "typed.json"), SchemaError);
  }
  json ranks = to_json(every_field_set());
  ranks["per_rank"][1]["rank"] = 3;
  EXPECT_THROW(run_result_from_json(ranks, "ranks.json"), SchemaError);
  EXPECT_THROW(run_result_from_json(json::array(), "array.json"), SchemaError);
}

TEST(ResultsSchema, AFileWithoutTheLaterFieldsReadsWithTheStatedDefaults) {
  json old = to_json(every_field_set());
  for (const char* k : {"allreduce_algorithm", "grad_compression", "overlap", "checkpoint_dir", "checkpoint_every", "resume",
                        "precision", "powersgd_rank", "powersgd_start_step"})
    old["config"].erase(k);
  old.erase("onednn");
  for (const char* k : {"accumulate", "sync_every", "local_sgd_warmup_steps", "stale_gradients"}) old["config"].erase(k);
  for (const char* k : {"overlap", "comm_priority", "binding", "bytes_per_step", "bytes_per_epoch"})
    old["allreduce"].erase(k);
  old.erase("resumed_from");
  old.erase("restarts");
  old.erase("resumed_world_size");
  for (auto& e : old["epochs"])
    for (const char* k : {"comm_cpu_s", "compute_preempted_s", "median_step_s", "allreduce_bytes", "optimizer_steps"})
      e.erase(k);

  const RunResult r = run_result_from_json(old, "old.json");
  EXPECT_EQ(r.config.allreduce_algorithm, "");
  EXPECT_EQ(r.config.grad_compression, "none");
  EXPECT_EQ(r.config.overlap, "thread");
  EXPECT_EQ(r.config.checkpoint_dir, "");
  EXPECT_EQ(r.config.checkpoint_every, 1);
  EXPECT_EQ(r.config.resume, "");
  EXPECT_EQ(r.config.precision, "fp32");
  EXPECT_EQ(r.onednn, json::object());
  EXPECT_EQ(r.config.powersgd_rank, 0);
  EXPECT_EQ(r.config.powersgd_start_step, 0);
  EXPECT_EQ(r.overlap, "thread");  // a world of 4: the communication thread was the only way
  EXPECT_EQ(r.comm_priority, "");
  EXPECT_EQ(r.binding, "none");
  EXPECT_EQ(r.resumed_from, "");
  EXPECT_EQ(r.config.accumulate, 1);
  EXPECT_EQ(r.config.sync_every, 1);
  EXPECT_EQ(r.config.local_sgd_warmup_steps, 0);
  EXPECT_EQ(r.config.stale_gradients, 0);
  EXPECT_TRUE(std::isnan(r.bytes_per_step));
  EXPECT_TRUE(std::isnan(r.bytes_per_epoch));
  EXPECT_TRUE(r.restarts.empty());
  EXPECT_EQ(r.resumed_world_size, 0);
  for (const auto& e : r.epochs) {
    EXPECT_TRUE(std::isnan(e.allreduce_bytes));
    EXPECT_EQ(e.optimizer_steps, -1);
    EXPECT_TRUE(std::isnan(e.comm_cpu_s));
    EXPECT_TRUE(std::isnan(e.compute_preempted_s));
    EXPECT_TRUE(std::isnan(e.median_step_s));
  }
  EXPECT_EQ(r.total_time_s, every_field_set().total_time_s);  // the rest as written
  old["world_size"] = 1;
  EXPECT_EQ(run_result_from_json(old, "old.json").overlap, "none");
}

TEST(ResultsSchema, ATrainersFileLoadsAndIsWrittenBackByteForByte) {
  // Written by train_parallel -w 2 --limit 640 -e 2 before the schema existed (hostname replaced).
  const std::string path = fixture("results_parallel_2p.json");
  const RunResult r = read_results_file(path);
  EXPECT_EQ(r.program, "train_parallel");
  EXPECT_EQ(r.world_size, 2);
  ASSERT_EQ(r.epochs.size(), 2u);
  EXPECT_EQ(r.per_rank.size(), 2u);
  EXPECT_EQ(r.step_losses.size(), 2u * r.steps_per_epoch);
  EXPECT_GT(r.layer_times_s.at("conv2").backward_s, 0);
  EXPECT_EQ(to_json(r).dump(2) + "\n", read_file(path));
}

TEST(ResultsSchema, AFileThatIsNotJsonOrMissingIsNamed) {
  TempDir tmp;
  const std::string bad = tmp.path + "/cut.json";
  std::ofstream(bad) << "{\"program\": ";
  try {
    read_results_file(bad);
    ADD_FAILURE();
  } catch (const ddp::UserError& e) {
    EXPECT_NE(std::string(e.what()).find(bad + " is not valid JSON"), std::string::npos) << e.what();
  }
  try {
    read_results_file(tmp.path + "/none.json");
    ADD_FAILURE();
  } catch (const ddp::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read the results file " + tmp.path + "/none.json"), std::string::npos);
  }
}

TEST(ResultsSchema, LenientNumbersOfThePerformanceMetrics) {
  const json j = {{"a", 1.5}, {"b", nullptr}, {"c", "x"}, {"t", true}};
  EXPECT_EQ(number_or(j, "a", 0), 1.5);
  EXPECT_EQ(number_or(j, "b", 7), 7);
  EXPECT_EQ(number_or(j, "c", 7), 7);
  EXPECT_EQ(number_or(j, "missing", 7), 7);
  EXPECT_EQ(number_or(json::array(), "a", 7), 7);
  EXPECT_TRUE(bool_or(j, "t", false));
  EXPECT_FALSE(bool_or(j, "a", false));
}
