#include "train/results.h"

#include <limits>
#include <oneapi/dnnl/dnnl.hpp>

#include "nn/cnn.h"
#include "report/machine.h"

namespace ddp::train {

namespace {

nlohmann::json phases_json(const PhaseTimes& p) {
  return {{"data", p.data},           {"forward", p.forward},     {"backward", p.backward},
          {"allreduce_wait", p.allreduce_wait}, {"optimizer", p.optimizer}, {"other", p.other}};
}

}  // namespace

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
          {"backend", c.backend},
          {"lr_scaling", c.lr_scaling},
          {"warmup_epochs", c.warmup_epochs},
          {"precision", nn::to_string(c.precision)},
          {"bucket_kb", c.bucket_kb},
          {"allreduce_algorithm", c.allreduce_algorithm},
          {"grad_compression", c.grad_compression},
          {"overlap", c.overlap},
          {"timeout_s", c.timeout_s},
          {"checkpoint_dir", c.checkpoint_dir},
          {"checkpoint_every", c.checkpoint_every},
          {"resume", c.resume}};
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

// The ISA oneDNN ran on and the implementation of every primitive
// ("conv2.forward": "brgconv:avx512_core_amx_bf16"), in network order.
nlohmann::json onednn_json(const RunResult& r) {
  nlohmann::json impls = nlohmann::json::object();
  for (const auto& [what, impl] : r.onednn_implementations) impls[what] = impl;
  return {{"isa", r.onednn_isa}, {"implementations", impls}};
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
          {"median_step_s", e.median_step_s}};
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
  const auto number_or_nan = [&](const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<double>() : std::numeric_limits<double>::quiet_NaN();
  };
  e.comm_cpu_s = number_or_nan("comm_cpu_s");
  e.compute_preempted_s = number_or_nan("compute_preempted_s");
  e.median_step_s = number_or_nan("median_step_s");
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
  auto versions = report::versions_json();
  versions["onednn"] = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  versions["gloo"] = "Debian libgloo-dev";

  return {{"program", program},
          {"config", config_json(r.config)},
          {"world_size", r.world_size},
          {"threads_per_process", r.threads_per_process},
          {"oversubscribed", r.oversubscribed},
          {"backend", r.world_size == 1 ? "local" : r.config.backend},
          {"machine", report::machine_json()},
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
          {"onednn", onednn_json(r)},
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
