#include "train/results.h"

#include <limits>
#include <oneapi/dnnl/dnnl.hpp>

#include "nn/cnn.h"
#include "sys/machine.h"

namespace ddp::train {

namespace {

nlohmann::json phases_json(const PhaseTimes& p) {
  return {{"data", p.data},           {"forward", p.forward},     {"backward", p.backward},
          {"allreduce_wait", p.allreduce_wait}, {"optimizer", p.optimizer}, {"other", p.other}};
}

}  // namespace

nlohmann::json machine_json() {
  return {{"cores", sys::online_cores()},
          {"cpu_model", sys::cpu_model()},
          {"hostname", sys::hostname()},
          {"memory_gib", sys::memory_gib()}};
}

nlohmann::json versions_json() { return {{"compiler", sys::compiler()}}; }

PhaseTimes& PhaseTimes::operator+=(const PhaseTimes& o) {
  for (const auto f : kPhaseTimesFields) this->*f += o.*f;
  return *this;
}

PhaseTimes& PhaseTimes::operator*=(double k) {
  for (const auto f : kPhaseTimesFields) this->*f *= k;
  return *this;
}

nlohmann::json config_json(const TrainConfig& c) {
  return {{"epochs", c.epochs},
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
          {"backend", to_string(c.backend)},
          {"lr_scaling", to_string(c.lr_scaling)},
          {"warmup_epochs", c.warmup_epochs},
          {"bucket_kb", c.bucket_kb},
          {"allreduce_algorithm", to_string(c.allreduce_algorithm)},
          {"grad_compression", to_string(c.grad_compression)},
          {"overlap", to_string(c.overlap)},
          {"timeout_s", c.timeout_s},
          {"checkpoint_dir", c.checkpoint_dir},
          {"checkpoint_every", c.checkpoint_every},
          {"resume", c.resume}};
}

nlohmann::json run_config_json(const RunResult& r) {
  nlohmann::json config = config_json(r.config);
  if (!r.allreduce_algorithm.empty()) config["allreduce_algorithm"] = r.allreduce_algorithm;
  return config;
}

namespace {

PhaseTimes phases_from_json(const nlohmann::json& j) {
  PhaseTimes p;
  p.data = j.at("data");
  p.forward = j.at("forward");
  p.backward = j.at("backward");
  p.allreduce_wait = j.at("allreduce_wait");
  p.optimizer = j.at("optimizer");
  p.other = j.at("other");
  return p;
}

}  // namespace

nlohmann::json to_json(const EpochRecord& e) {
  return {{"epoch", e.epoch},
          {"loss", e.loss},
          {"test_loss", e.test_loss},
          {"test_accuracy", e.test_accuracy},
          {"time_s", e.time_s},
          {"train_time_s", e.train_time_s},
          {"eval_time_s", e.eval_time_s},
          {"samples_per_s", e.samples_per_s},
          {"learning_rate", e.learning_rate},
          {"time_breakdown_s", phases_json(e.phases)},
          {"allreduce_busy_s", e.allreduce_busy_s},
          {"comm_cpu_s", e.comm_cpu_s},
          {"compute_preempted_s", e.compute_preempted_s},
          {"median_step_s", e.median_step_s},
          {"allreduce_wait_split_s",
           {{"later_rank", e.allreduce_wait_later_rank_s}, {"transfer", e.allreduce_wait_transfer_s}}}};
}

EpochRecord epoch_from_json(const nlohmann::json& j) {
  EpochRecord e;
  e.epoch = j.at("epoch");
  e.loss = j.at("loss");
  e.test_loss = j.at("test_loss");
  e.test_accuracy = j.at("test_accuracy");
  e.time_s = j.at("time_s");
  e.train_time_s = j.at("train_time_s");
  e.eval_time_s = j.at("eval_time_s");
  e.samples_per_s = j.at("samples_per_s");
  e.learning_rate = j.at("learning_rate");
  e.phases = phases_from_json(j.at("time_breakdown_s"));
  e.allreduce_busy_s = j.at("allreduce_busy_s");
  // Not in files written before they were measured; null when unknown.
  const auto number_in = [](const nlohmann::json& o, const char* key) {
    const auto it = o.is_object() ? o.find(key) : o.end();
    return it != o.end() && it->is_number() ? it->get<double>() : std::numeric_limits<double>::quiet_NaN();
  };
  const auto number_or_nan = [&](const char* key) { return number_in(j, key); };
  e.comm_cpu_s = number_or_nan("comm_cpu_s");
  e.compute_preempted_s = number_or_nan("compute_preempted_s");
  e.median_step_s = number_or_nan("median_step_s");
  const nlohmann::json split = j.value("allreduce_wait_split_s", nlohmann::json::object());
  e.allreduce_wait_later_rank_s = number_in(split, "later_rank");
  e.allreduce_wait_transfer_s = number_in(split, "transfer");
  return e;
}

nlohmann::json to_json(const RunResult& r, const std::string& program) {
  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& e : r.epochs) epochs.push_back(to_json(e));
  nlohmann::json per_rank = nlohmann::json::array();
  for (size_t q = 0; q < r.per_rank.size(); ++q) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : r.per_rank[q]) list.push_back(phases_json(p));
    per_rank.push_back({{"rank", q}, {"time_breakdown_s", list}});
  }
  nlohmann::json layers = nlohmann::json::object();
  for (int l = 0; l < nn::kNumLayers && l < static_cast<int>(r.layer_forward_s.size()); ++l)
    layers[nn::layer_name(l)] = {{"forward_s", r.layer_forward_s[l]}, {"backward_s", r.layer_backward_s[l]}};

  const dnnl_version_t* v = dnnl_version();
  auto versions = versions_json();
  versions["onednn"] = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  versions["gloo"] = "Debian libgloo-dev";

  return {{"program", program},
          {"config", run_config_json(r)},
          {"world_size", r.world_size},
          {"threads_per_process", r.threads_per_process},
          {"oversubscribed", r.oversubscribed},
          {"backend", r.world_size == 1 ? "local" : to_string(r.config.backend)},
          {"machine", machine_json()},
          {"versions", versions},
          {"train_samples", r.train_samples},
          {"test_samples", r.test_samples},
          {"steps_per_epoch", r.steps_per_epoch},
          {"samples_per_epoch", r.samples_per_epoch},
          {"num_params", r.num_params},
          {"data_checksum", r.data_checksum},
          {"allreduce", {{"bucket_bytes", r.bucket_bytes}, {"num_buckets", r.num_buckets},
                         {"overlap", r.overlap}, {"comm_priority", r.comm_priority}, {"binding", r.binding}}},
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
}

}  // namespace ddp::train
