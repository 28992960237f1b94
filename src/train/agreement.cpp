#include "train/agreement.h"

#include <string>

#include "common/error.h"
#include "common/hash.h"
#include "nn/cnn.h"
#include "train/epoch_stats.h"

namespace ddp::train {

namespace {

void check_ranks_agree(dist::Communicator& comm, uint64_t value, const std::string& what, const std::string& hint) {
  // Two 32-bit halves: exact in a double.
  const double row[2] = {static_cast<double>(value >> 32), static_cast<double>(value & 0xffffffffu)};
  const auto all = gather_rows(comm, row, 2);
  for (int r = 1; r < comm.size(); ++r) {
    if (all[2 * r] != all[0] || all[2 * r + 1] != all[1])
      throw UserError(what + " differ between rank 0 and rank " + std::to_string(r), hint);
  }
}

uint64_t config_fingerprint(const TrainConfig& c) {
  const std::string s = std::to_string(c.epochs) + "|" + std::to_string(c.batch_size) + "|" +
                        std::to_string(c.learning_rate) + "|" + std::to_string(c.seed) + "|" +
                        std::to_string(c.dropout) + "|" + to_string(c.lr_scaling) + "|" +
                        std::to_string(c.warmup_epochs) + "|" + std::to_string(nn::Cnn::num_params()) +
                        "|" + to_string(c.precision) + "|" +
                        // How a step synchronises: every rank must take part in the same collectives.
                        std::to_string(c.accumulate) + "|" + std::to_string(c.sync_every) + "|" +
                        std::to_string(c.local_sgd_warmup_steps) + "|" + std::to_string(c.stale_gradients) +
                        // The ranks must make the same all-reduce calls: the same compression.
                        "|" + to_string(c.grad_compression) +
                        (c.grad_compression == dist::Compression::powersgd
                             ? " " + std::to_string(powersgd_options(c).matrix_approximation_rank) + " " +
                                   std::to_string(powersgd_options(c).start_step)
                             : "") +
                        // Every rank must trace the same steps: the trace is gathered through collectives.
                        "|" + (c.trace.empty() ? "" : "trace " + c.trace_steps);
  return fnv1a(s.data(), s.size());
}

}  // namespace

void check_same_run(dist::Communicator& comm, const TrainConfig& cfg, const data::Dataset& train_set,
                    const data::Dataset& test_set) {
  check_ranks_agree(comm, train_set.checksum * 31 + test_set.checksum, "the data sets",
                    "give every rank the same --dataset, --data-dir and --limit, with identical files");
  check_ranks_agree(comm, config_fingerprint(cfg), "the training configurations",
                    "start every rank with the same flags");
}

void check_same_parameters(dist::Communicator& comm, const nn::Cnn& net, int epoch) {
  check_ranks_agree(comm, fnv1a(net.params(), nn::Cnn::num_params() * sizeof(float)),
                    "the parameters after epoch " + std::to_string(epoch + 1),
                    "the ranks diverged: this is a bug (or faulty hardware); please report it");
}

}  // namespace ddp::train
