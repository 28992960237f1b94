#include "train/results.h"

#include <oneapi/dnnl/dnnl.hpp>

#include "sys/machine.h"

namespace ddp::train {

results::RunConfig config_record(const TrainConfig& c) {
  results::RunConfig r;
  r.epochs = c.epochs;
  r.batch_size = c.batch_size;
  r.learning_rate = c.learning_rate;
  r.momentum = c.momentum;
  r.dataset = c.dataset;
  r.data_dir = c.data_dir;
  r.limit = c.limit;
  r.seed = c.seed;
  r.dropout = c.dropout;
  r.threads = c.threads;
  r.world_size = c.world_size;
  r.backend = to_string(c.backend);
  r.lr_scaling = to_string(c.lr_scaling);
  r.warmup_epochs = c.warmup_epochs;
  r.precision = to_string(c.precision);
  r.bucket_kb = c.bucket_kb;
  r.allreduce_algorithm = to_string(c.allreduce_algorithm);
  r.grad_compression = to_string(c.grad_compression);
  r.overlap = to_string(c.overlap);
  r.timeout_s = c.timeout_s;
  r.checkpoint_dir = c.checkpoint_dir;
  r.checkpoint_every = c.checkpoint_every;
  r.resume = c.resume;
  r.accumulate = c.accumulate;
  r.test_limit = c.test_limit;
  r.sync_every = c.sync_every;
  r.local_sgd_warmup_steps = c.local_sgd_warmup_steps;
  r.stale_gradients = c.stale_gradients;
  if (c.grad_compression == dist::Compression::powersgd) {
    const dist::PowerSgdOptions o = powersgd_options(c);
    r.powersgd_rank = o.matrix_approximation_rank;
    r.powersgd_start_step = o.start_step;
  }
  return r;
}

nlohmann::json config_json(const TrainConfig& c) { return results::to_json(config_record(c)); }

nlohmann::json machine_json() {
  return {{"cores", sys::online_cores()},
          {"cpu_model", sys::cpu_model()},
          {"hostname", sys::hostname()},
          {"memory_gib", sys::memory_gib()}};
}

nlohmann::json versions_json() { return {{"compiler", sys::compiler()}}; }

nlohmann::json to_json(const RunResult& r, const std::string& program) {
  RunResult out = r;
  out.program = program;
  out.backend = r.world_size == 1 ? "local" : r.config.backend;
  out.machine = machine_json();
  const dnnl_version_t* v = dnnl_version();
  out.versions = versions_json();
  out.versions["onednn"] = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  out.versions["gloo"] = "Debian libgloo-dev";
  return results::to_json(out);
}

}  // namespace ddp::train
