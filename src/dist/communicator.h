// The collective operations data-parallel training needs, behind one
// interface. A world of one (LocalCommunicator) makes every operation a
// no-op, so serial training runs the same loop as parallel training.
//
// Thread rule: at most one thread calls into a communicator at a time (the
// gradient synchroniser's communication thread during backward, the training
// thread otherwise).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ddp::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "local", "gloo", "mpi"

  // In place: data[i] = sum over ranks of data[i]. Exact for every world
  // size. Throws ddp::UserError when a peer is gone or the timeout passes.
  virtual void allreduce_sum(float* data, size_t count) = 0;
  virtual void allreduce_sum(double* data, size_t count) = 0;
  // In place, on bfloat16 values (dist/bf16.h): data[i] becomes the sum over
  // ranks, each pairwise addition done in float and rounded to bf16. Every
  // rank ends with the same bits. The default (in dist/bf16.cpp) widens to float and calls
  // allreduce_sum(float*) (correct, but float-sized on the wire); a backend
  // overrides it to send 2-byte elements (Gloo: a custom reduce function;
  // MPI: MPI_UINT16_T with a user-defined MPI_Op).
  virtual void allreduce_sum_bf16(uint16_t* data, size_t count);
  // data on every rank becomes root's data.
  virtual void broadcast(float* data, size_t count, int root) = 0;
  virtual void barrier() = 0;
};

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  void allreduce_sum(float*, size_t) override {}
  void allreduce_sum(double*, size_t) override {}
  void allreduce_sum_bf16(uint16_t*, size_t) override {}
  void broadcast(float*, size_t, int) override {}
  void barrier() override {}
};

// A world of `size` ranks (this one rank 0) whose collectives return at
// once and leave the data as it is: not a correct all-reduce for size > 1.
// For timing what surrounds communication, with GradSync's communication
// thread running as in a real world: benchmarks and allocation tests.
class SilentCommunicator final : public Communicator {
 public:
  explicit SilentCommunicator(int size) : size_(size) {}
  int rank() const override { return 0; }
  int size() const override { return size_; }
  std::string backend() const override { return "silent"; }
  void allreduce_sum(float*, size_t) override {}
  void allreduce_sum(double*, size_t) override {}
  void allreduce_sum_bf16(uint16_t*, size_t) override {}
  void broadcast(float*, size_t, int) override {}
  void barrier() override {}

 private:
  int size_;
};

}  // namespace ddp::dist
