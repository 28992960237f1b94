// A Communicator that counts the bytes handed to it: every all-reduce's
// payload as this rank passes it in (count x element size: 4 bytes a float,
// 8 a double, 2 a bfloat16), before the backend moves anything. The trainer
// hands its step traffic (gradients, the per-step flags, parameter averages)
// through one of these, so results can say what each method sends per
// optimizer step (allreduce.bytes_per_step) as counted, not as computed from
// the flags. What an algorithm sends on the wire is a multiple of this
// (a ring all-reduce sends about 2 (p-1)/p of it each way).
//
// Thread rule: as Communicator's; the counter itself is atomic, so the
// training thread may read it while the communication thread adds to it.
#pragma once
#include <atomic>
#include <cstdint>

#include "dist/communicator.h"

namespace ddp::dist {

class CountingCommunicator final : public Communicator {
 public:
  explicit CountingCommunicator(Communicator& inner) : inner_(inner) {}

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string backend() const override { return inner_.backend(); }

  void allreduce_sum(float* data, size_t count) override {
    add(count * sizeof(float));
    inner_.allreduce_sum(data, count);
  }
  void allreduce_sum(double* data, size_t count) override {
    add(count * sizeof(double));
    inner_.allreduce_sum(data, count);
  }
  void allreduce_sum_bf16(uint16_t* data, size_t count) override {
    add(count * sizeof(uint16_t));
    inner_.allreduce_sum_bf16(data, count);
  }
  // Broadcasts and barriers are not all-reduces: passed on, not counted.
  void broadcast(float* data, size_t count, int root) override { inner_.broadcast(data, count, root); }
  void barrier() override { inner_.barrier(); }

  // Bytes handed to all-reduces so far.
  uint64_t allreduce_bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  void add(size_t bytes) { bytes_.fetch_add(bytes, std::memory_order_relaxed); }

  Communicator& inner_;
  std::atomic<uint64_t> bytes_{0};
};

}  // namespace ddp::dist
