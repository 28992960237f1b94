#include "results/run_result.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "results/json_reader.h"

namespace ddp::results {

using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

PhaseTimes phases_from(const FieldReader& f) {
  PhaseTimes p;
  p.data = f.required<double>("data");
  p.forward = f.required<double>("forward");
  p.backward = f.required<double>("backward");
  p.allreduce_wait = f.required<double>("allreduce_wait");
  p.optimizer = f.required<double>("optimizer");
  p.other = f.required<double>("other");
  return p;
}

EpochRecord epoch_from(const FieldReader& f) {
  EpochRecord e;
  e.epoch = f.required<int>("epoch");
  e.loss = f.required<double>("loss");
  e.test_loss = f.required<double>("test_loss");
  e.test_accuracy = f.required<double>("test_accuracy");
  e.time_s = f.required<double>("time_s");
  e.train_time_s = f.required<double>("train_time_s");
  e.eval_time_s = f.required<double>("eval_time_s");
  e.samples_per_s = f.required<double>("samples_per_s");
  e.learning_rate = f.required<double>("learning_rate");
  e.phases = phases_from(f.object("time_breakdown_s"));
  e.allreduce_busy_s = f.required<double>("allreduce_busy_s");
  e.comm_cpu_s = f.optional<double>("comm_cpu_s", kNaN);
  e.compute_preempted_s = f.optional<double>("compute_preempted_s", kNaN);
  e.median_step_s = f.optional<double>("median_step_s", kNaN);
  if (f.has("allreduce_wait_split_s")) {
    const FieldReader split = f.object("allreduce_wait_split_s");
    e.allreduce_wait_later_rank_s = split.required<double>("later_rank");
    e.allreduce_wait_transfer_s = split.required<double>("transfer");
  } else {
    e.allreduce_wait_later_rank_s = e.allreduce_wait_transfer_s = kNaN;
  }
  e.allreduce_bytes = f.optional<double>("allreduce_bytes", kNaN);
  e.optimizer_steps = f.optional<int64_t>("optimizer_steps", -1);
  return e;
}

RunConfig config_from(const FieldReader& f) {
  RunConfig c;
  c.epochs = f.required<int>("epochs");
  c.batch_size = f.required<int>("batch_size");
  c.learning_rate = f.required<double>("learning_rate");
  c.momentum = f.required<double>("momentum");
  c.dataset = f.required<std::string>("dataset");
  c.data_dir = f.required<std::string>("data_dir");
  c.limit = f.required<int64_t>("limit");
  c.seed = f.required<uint64_t>("seed");
  c.dropout = f.required<float>("dropout");
  c.threads = f.required<int>("threads");
  c.world_size = f.required<int>("world_size");
  c.backend = f.required<std::string>("backend");
  c.lr_scaling = f.required<std::string>("lr_scaling");
  c.warmup_epochs = f.required<int>("warmup_epochs");
  c.precision = f.optional<std::string>("precision", "fp32");
  c.bucket_kb = f.required<size_t>("bucket_kb");
  c.allreduce_algorithm = f.optional<std::string>("allreduce_algorithm", "");
  c.grad_compression = f.optional<std::string>("grad_compression", "none");
  c.overlap = f.optional<std::string>("overlap", "thread");
  c.timeout_s = f.required<double>("timeout_s");
  c.checkpoint_dir = f.optional<std::string>("checkpoint_dir", "");
  c.checkpoint_every = f.optional<int>("checkpoint_every", 1);
  c.resume = f.optional<std::string>("resume", "");
  c.accumulate = f.optional<int>("accumulate", 1);
  c.test_limit = f.optional<int64_t>("test_limit", 0);
  c.sync_every = f.optional<int>("sync_every", 1);
  c.local_sgd_warmup_steps = f.optional<int64_t>("local_sgd_warmup_steps", 0);
  c.stale_gradients = f.optional<int>("stale_gradients", 0);
  c.powersgd_rank = f.optional<int>("powersgd_rank", 0);
  c.powersgd_start_step = f.optional<int64_t>("powersgd_start_step", 0);
  return c;
}

void read_allreduce(const FieldReader& a, RunResult& r) {
  r.bucket_bytes = a.required<size_t>("bucket_bytes");
  r.num_buckets = a.required<size_t>("num_buckets");
  r.overlap = a.optional<std::string>("overlap", r.world_size > 1 ? "thread" : "none");
  r.comm_priority = a.optional<std::string>("comm_priority", "");
  r.binding = a.optional<std::string>("binding", "none");
  r.bytes_per_step = a.optional<double>("bytes_per_step", kNaN);
  r.bytes_per_epoch = a.optional<double>("bytes_per_epoch", kNaN);
}

void read_lists(const FieldReader& f, RunResult& r) {
  for (size_t i = 0; i < f.array("epochs").size(); ++i) r.epochs.push_back(epoch_from(f.element("epochs", i)));
  for (size_t q = 0; q < f.array("per_rank").size(); ++q) {
    const FieldReader rank = f.element("per_rank", q);
    if (rank.required<size_t>("rank") != q)
      throw SchemaError(f.source(), rank.field("rank"), "is " + std::to_string(rank.required<size_t>("rank")) +
                                                            ", expected " + std::to_string(q) + " (ranks in order)");
    std::vector<PhaseTimes> list;
    for (size_t e = 0; e < rank.array("time_breakdown_s").size(); ++e)
      list.push_back(phases_from(rank.element("time_breakdown_s", e)));
    r.per_rank.push_back(std::move(list));
  }
  for (size_t i = 0; i < f.array("step_losses").size(); ++i)
    r.step_losses.push_back(f.element_value<float>("step_losses", i));
  const FieldReader layers = f.object("layer_times_s");
  for (const auto& [name, times] : f.any_object("layer_times_s").items()) {
    const FieldReader t = layers.object(name.c_str());
    r.layer_times_s[name] = {t.required<double>("forward_s"), t.required<double>("backward_s")};
  }
}

RestartRecord restart_from(const FieldReader& f) {
  RestartRecord x;
  x.restart = f.required<int>("restart");
  x.at_s = f.required<double>("at_s");
  x.rank = f.required<int>("rank");
  x.cause = f.required<std::string>("cause");
  x.resumed_step = f.required<int64_t>("resumed_step");
  x.steps_rerun = f.required<int64_t>("steps_rerun");
  x.rerun_s = f.required<double>("rerun_s");
  x.recovery_s = f.required<double>("recovery_s");
  x.seconds_lost = f.required<double>("seconds_lost");
  if (f.has("world_size")) x.world_size = f.required<int>("world_size");  // files before elastic restarts lack it
  return x;
}

}  // namespace

json to_json(const RestartRecord& x) {
  return {{"restart", x.restart},           {"at_s", x.at_s},
          {"rank", x.rank},                 {"cause", x.cause},
          {"resumed_step", x.resumed_step}, {"steps_rerun", x.steps_rerun},
          {"rerun_s", x.rerun_s},           {"recovery_s", x.recovery_s},
          {"seconds_lost", x.seconds_lost}, {"world_size", x.world_size}};
}

json to_json(const PhaseTimes& p) {
  return {{"data", p.data},           {"forward", p.forward},     {"backward", p.backward},
          {"allreduce_wait", p.allreduce_wait}, {"optimizer", p.optimizer}, {"other", p.other}};
}

json to_json(const EpochRecord& e) {
  json j = {{"epoch", e.epoch},
          {"loss", e.loss},
          {"test_loss", e.test_loss},
          {"test_accuracy", e.test_accuracy},
          {"time_s", e.time_s},
          {"train_time_s", e.train_time_s},
          {"eval_time_s", e.eval_time_s},
          {"samples_per_s", e.samples_per_s},
          {"learning_rate", e.learning_rate},
          {"time_breakdown_s", to_json(e.phases)},
          {"allreduce_busy_s", e.allreduce_busy_s},
          {"comm_cpu_s", e.comm_cpu_s},
          {"compute_preempted_s", e.compute_preempted_s},
          {"median_step_s", e.median_step_s}};
  // Left out where nothing measured it (a world of one, files of older
  // versions read back), so that such files are written back as they were.
  if (!std::isnan(e.allreduce_wait_later_rank_s) || !std::isnan(e.allreduce_wait_transfer_s))
    j["allreduce_wait_split_s"] = {{"later_rank", e.allreduce_wait_later_rank_s},
                                   {"transfer", e.allreduce_wait_transfer_s}};
  if (!std::isnan(e.allreduce_bytes)) {
    j["allreduce_bytes"] = e.allreduce_bytes;
    j["optimizer_steps"] = e.optimizer_steps;
  }
  return j;
}

json to_json(const RunConfig& c) {
  json j = {{"epochs", c.epochs},
          {"batch_size", c.batch_size},
          {"learning_rate", c.learning_rate},
          {"momentum", c.momentum},
          {"dataset", c.dataset},
          {"data_dir", c.data_dir},
          {"limit", c.limit},
          {"seed", c.seed},
          {"dropout", c.dropout},
          {"threads", c.threads},
          {"world_size", c.world_size},
          {"backend", c.backend},
          {"lr_scaling", c.lr_scaling},
          {"warmup_epochs", c.warmup_epochs},
          {"precision", c.precision},
          {"bucket_kb", c.bucket_kb},
          {"allreduce_algorithm", c.allreduce_algorithm},
          {"grad_compression", c.grad_compression},
          {"overlap", c.overlap},
          {"timeout_s", c.timeout_s},
          {"checkpoint_dir", c.checkpoint_dir},
          {"checkpoint_every", c.checkpoint_every},
          {"resume", c.resume}};
  // Only where set (RunConfig says why).
  if (c.accumulate != 1) j["accumulate"] = c.accumulate;
  if (c.test_limit != 0) j["test_limit"] = c.test_limit;
  if (c.sync_every != 1) j["sync_every"] = c.sync_every;
  if (c.local_sgd_warmup_steps != 0) j["local_sgd_warmup_steps"] = c.local_sgd_warmup_steps;
  if (c.stale_gradients != 0) j["stale_gradients"] = c.stale_gradients;
  if (c.grad_compression == "powersgd") {
    j["powersgd_rank"] = c.powersgd_rank;
    j["powersgd_start_step"] = c.powersgd_start_step;
  }
  return j;
}

json to_json(const RunResult& r) {
  json epochs = json::array();
  for (const auto& e : r.epochs) epochs.push_back(to_json(e));
  json per_rank = json::array();
  for (size_t q = 0; q < r.per_rank.size(); ++q) {
    json list = json::array();
    for (const auto& p : r.per_rank[q]) list.push_back(to_json(p));
    per_rank.push_back({{"rank", q}, {"time_breakdown_s", list}});
  }
  json layers = json::object();
  for (const auto& [name, t] : r.layer_times_s) layers[name] = {{"forward_s", t.forward_s}, {"backward_s", t.backward_s}};
  json allreduce = {{"bucket_bytes", r.bucket_bytes}, {"num_buckets", r.num_buckets}, {"overlap", r.overlap},
                    {"comm_priority", r.comm_priority}, {"binding", r.binding}};
  if (!std::isnan(r.bytes_per_step)) allreduce["bytes_per_step"] = r.bytes_per_step;
  if (!std::isnan(r.bytes_per_epoch)) allreduce["bytes_per_epoch"] = r.bytes_per_epoch;
  json j = {{"program", r.program},
          {"config", to_json(r.config)},
          {"world_size", r.world_size},
          {"threads_per_process", r.threads_per_process},
          {"oversubscribed", r.oversubscribed},
          {"backend", r.backend},
          {"machine", r.machine},
          {"versions", r.versions},
          {"train_samples", r.train_samples},
          {"test_samples", r.test_samples},
          {"steps_per_epoch", r.steps_per_epoch},
          {"samples_per_epoch", r.samples_per_epoch},
          {"num_params", r.num_params},
          {"data_checksum", r.data_checksum},
          {"allreduce", allreduce},
          {"resumed_from", r.resumed_from},
          {"epochs", epochs},
          {"per_rank", per_rank},
          {"step_losses", r.step_losses},
          {"layer_times_s", layers},
          {"startup_s", r.startup_s},
          {"final_test_accuracy", r.final_test_accuracy},
          {"total_time_s", r.total_time_s},
          {"train_time_s", r.train_time_s},
          {"throughput_samples_per_s", r.throughput}};
  // config.precision and onednn came with bf16: a file without oneDNN's
  // record is of an older version (or read from one), and is written back
  // as it was, without either unless the precision says more than the
  // default an absent field reads as.
  if (!r.onednn.empty()) j["onednn"] = r.onednn;
  else if (r.config.precision == "fp32") j["config"].erase("precision");
  if (r.resumed_world_size != 0) j["resumed_world_size"] = r.resumed_world_size;
  if (!r.restarts.empty()) {
    json list = json::array();
    for (const auto& x : r.restarts) list.push_back(to_json(x));
    j["restarts"] = list;
  }
  return j;
}

EpochRecord epoch_from_json(const json& j, const std::string& source) { return epoch_from(FieldReader(j, source)); }

RunConfig config_from_json(const json& j, const std::string& source) { return config_from(FieldReader(j, source)); }

RunResult run_result_from_json(const json& j, const std::string& source) {
  const FieldReader f(j, source);
  RunResult r;
  r.program = f.required<std::string>("program");
  r.config = config_from(f.object("config"));
  r.world_size = f.required<int>("world_size");
  r.threads_per_process = f.required<int>("threads_per_process");
  r.oversubscribed = f.required<bool>("oversubscribed");
  r.backend = f.required<std::string>("backend");
  r.machine = f.any_object("machine");
  r.versions = f.any_object("versions");
  r.train_samples = f.required<int64_t>("train_samples");
  r.test_samples = f.required<int64_t>("test_samples");
  r.steps_per_epoch = f.required<int64_t>("steps_per_epoch");
  r.samples_per_epoch = f.required<int64_t>("samples_per_epoch");
  r.num_params = f.required<size_t>("num_params");
  r.data_checksum = f.required<uint64_t>("data_checksum");
  read_allreduce(f.object("allreduce"), r);
  r.resumed_from = f.optional<std::string>("resumed_from", "");
  if (f.has("onednn")) r.onednn = f.any_object("onednn");
  r.resumed_world_size = f.optional<int>("resumed_world_size", 0);
  if (f.has("restarts"))
    for (size_t i = 0; i < f.array("restarts").size(); ++i) r.restarts.push_back(restart_from(f.element("restarts", i)));
  read_lists(f, r);
  r.startup_s = f.required<double>("startup_s");
  r.final_test_accuracy = f.required<double>("final_test_accuracy");
  r.total_time_s = f.required<double>("total_time_s");
  r.train_time_s = f.required<double>("train_time_s");
  r.throughput = f.required<double>("throughput_samples_per_s");
  return r;
}

RunResult read_results_file(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    throw UserError("cannot read the results file " + path + ": " + std::strerror(errno),
                    "check the path; results files are written by train_serial / train_parallel --save-results");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw UserError("the results file " + path + " is not valid JSON: " + e.what(),
                    "the file is damaged or was cut short: run the training again to write it anew");
  }
  return run_result_from_json(j, path);
}

}  // namespace ddp::results
