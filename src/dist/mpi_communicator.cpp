#include "dist/mpi_communicator.h"

#include <mpi.h>
#include <sys/prctl.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <thread>

#include "common/error.h"
#include "dist/bf16.h"
#include "sys/env.h"

namespace ddp::dist {
namespace {

using Clock = std::chrono::steady_clock;

// OpenMPI's choice of MPI_Iallreduce algorithm: 1 = ring (see make_mpi_communicator).
constexpr const char* kIallreduceAlgorithmVar = "OMPI_MCA_coll_libnbc_iallreduce_algorithm";

// The bfloat16 sum as an MPI reduction: inout[i] = in[i] + inout[i], added
// in float and rounded once (commutative, so MPI may pair ranks either way).
void bf16_sum_op(void* in, void* inout, int* len, MPI_Datatype*) {
  bf16_sum(static_cast<uint16_t*>(inout), static_cast<const uint16_t*>(in), static_cast<const uint16_t*>(inout),
           static_cast<size_t>(*len));
}

std::string mpi_error_text(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, static_cast<size_t>(len));
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const MpiOptions& o) : options_(o) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Op_create(&bf16_sum_op, 1, &bf16_op_);
  }

  ~MpiCommunicator() override {
    // Finalising is collective: only on the normal path, never with an
    // operation left pending or while an error unwinds (the process then
    // exits non-zero and mpirun ends the job).
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && !broken_ && std::uncaught_exceptions() == 0) {
      MPI_Op_free(&bf16_op_);
      MPI_Finalize();
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void allreduce_sum(float* data, size_t count) override { allreduce(data, count, MPI_FLOAT); }
  void allreduce_sum(double* data, size_t count) override { allreduce(data, count, MPI_DOUBLE); }
  // 2-byte elements on the wire (MPI_UINT16_T with a user-defined sum). Every
  // rank gets the same bits: OpenMPI's all-reduce algorithms either reduce
  // each chunk on one rank and copy it to all (ring) or pair ranks
  // symmetrically (recursive doubling), and a pairwise sum is commutative.
  void allreduce_sum_bf16(uint16_t* data, size_t count) override { allreduce(data, count, MPI_UINT16_T, bf16_op_); }

  void broadcast(float* data, size_t count, int root) override {
    if (root < 0 || root >= size_)
      throw UserError("broadcast from rank " + std::to_string(root) + " in a world of " + std::to_string(size_));
    if (size_ == 1) return;
    for (size_t done = 0; done < count;) {
      const int n = static_cast<int>(std::min<size_t>(count - done, INT_MAX));
      MPI_Request req;
      check("broadcast", MPI_Ibcast(data + done, n, MPI_FLOAT, root, MPI_COMM_WORLD, &req));
      complete("broadcast", req);
      done += static_cast<size_t>(n);
    }
  }

  void barrier() override {
    if (size_ == 1) return;
    MPI_Request req;
    check("barrier", MPI_Ibarrier(MPI_COMM_WORLD, &req));
    complete("barrier", req);
  }

 private:
  template <typename T>
  void allreduce(T* data, size_t count, MPI_Datatype type, MPI_Op op = MPI_SUM) {
    if (size_ == 1) return;
    for (size_t done = 0; done < count;) {  // MPI counts are ints
      const int n = static_cast<int>(std::min<size_t>(count - done, INT_MAX));
      MPI_Request req;
      check("all-reduce", MPI_Iallreduce(MPI_IN_PLACE, data + done, n, type, op, MPI_COMM_WORLD, &req));
      complete("all-reduce", req);
      done += static_cast<size_t>(n);
    }
  }

  void check(const char* what, int rc) {
    if (broken_)
      throw PeerError("rank " + std::to_string(rank_) + ": cannot run " + what +
                          ": the MPI job failed earlier",
                      "see the first error above; a job cannot continue after losing a peer");
    if (rc == MPI_SUCCESS) return;
    broken_ = true;
    throw PeerError("rank " + std::to_string(rank_) + ": MPI " + what + " failed: " + mpi_error_text(rc),
                    "the first error is usually on another rank: read mpirun's report");
  }

  // Tests the request until it completes: spinning first, then sleeping
  // poll_us between tests; gives up after the timeout.
  void complete(const char* what, MPI_Request& req) {
    // Sleeps of a few microseconds need a fine timer slack (Linux adds 50 us
    // to every sleep by default); set once for each calling thread.
    thread_local bool fine_slack = false;
    if (!fine_slack && options_.poll_us > 0) {
      ::prctl(PR_SET_TIMERSLACK, 1000UL);  // 1 us; failure only costs precision
      fine_slack = true;
    }
    const auto start = Clock::now();
    const auto spin = std::chrono::microseconds(options_.spin_us);
    const auto sleep = std::chrono::microseconds(options_.poll_us);
    for (long i = 0;; ++i) {
      int flag = 0;
      const int rc = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) {
        broken_ = true;
        throw PeerError("rank " + std::to_string(rank_) + ": MPI " + what + " failed: " + mpi_error_text(rc),
                        "the first error is usually on another rank: read mpirun's report");
      }
      if (flag) return;
      if ((i & 63) != 0 && options_.poll_us == 0) continue;  // pure spinning: look at the clock rarely
      const auto waited = Clock::now() - start;
      if (waited > options_.timeout) {
        broken_ = true;  // the request stays pending: never finalise after this
        char secs[32];
        std::snprintf(secs, sizeof secs, "%g", static_cast<double>(options_.timeout.count()) / 1000.0);
        // MPI does not say whose contribution is missing; in a world of two
        // it can only be the other rank's.
        const std::string who = size_ == 2 ? " (rank " + std::to_string(1 - rank_) +
                                                 " sent nothing: it went silent, stopped, hung, or far slower)"
                                           : " (a peer is hung or far slower)";
        throw PeerError("rank " + std::to_string(rank_) + ": MPI " + what + " waited more than " + secs +
                            " s for the other ranks" + who,
                        "read the other ranks' output; if they are only slow, raise --timeout");
      }
      if (options_.poll_us > 0 && waited > spin) std::this_thread::sleep_for(sleep);
    }
  }

  MpiOptions options_;
  MPI_Op bf16_op_ = MPI_OP_NULL;
  int rank_ = 0, size_ = 1;
  bool broken_ = false;
};

}  // namespace

MpiOptions mpi_options_from_env(MpiOptions o) {
  o.spin_us = sys::env_int("DDP_MPI_SPIN_US", o.spin_us, "a whole number of microseconds");
  o.poll_us = sys::env_int("DDP_MPI_POLL_US", o.poll_us, "a whole number of microseconds");
  return o;
}

std::string mpi_allreduce_algorithm() {
  const std::string s = sys::env_string(kIallreduceAlgorithmVar, "0");
  if (s == "1") return "ring";
  if (s == "2") return "binomial";
  if (s == "3") return "rabenseifner";
  if (s == "4") return "recursive doubling";
  return "libnbc default";
}

std::unique_ptr<Communicator> make_mpi_communicator(const MpiOptions& o) {
  if (o.timeout.count() <= 0)
    throw UserError("the communication timeout must be positive", "pass a timeout of e.g. 60 s");
  if (o.spin_us < 0 || o.poll_us < 0) throw UserError("negative MPI polling intervals", "use values >= 0");
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized)
    throw UserError("MPI was already finalised in this process", "MPI can be initialised only once per process");
  if (!initialized) {
    // MPI_Iallreduce (OpenMPI's libnbc) picks a binomial tree whenever the
    // buffer is in place or there are fewer than 4 ranks: every byte goes
    // to rank 0 and back, one rank summing while the other waits. The ring
    // splits both the copying and the summing evenly: faster for the whole
    // gradient and no slower for the small buckets (docs/performance.md,
    // "MPI details"). An explicit choice (environment, or mpirun --mca) wins.
    if (o.ring_allreduce) ::setenv(kIallreduceAlgorithmVar, "1", /*overwrite=*/0);
    int provided = MPI_THREAD_SINGLE;
    const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS)
      throw UserError("MPI_Init_thread failed: " + mpi_error_text(rc),
                      "start the program with mpirun (OpenMPI), e.g. mpirun -np 2 train_parallel --backend mpi");
    if (provided < MPI_THREAD_SERIALIZED)
      throw UserError("this MPI library gives too little thread support (level " + std::to_string(provided) +
                          ", need MPI_THREAD_SERIALIZED)",
                      "use an MPI built with thread support (Debian's OpenMPI has it)");
  } else {
    int provided = MPI_THREAD_SINGLE;
    MPI_Query_thread(&provided);
    if (provided < MPI_THREAD_SERIALIZED)
      throw UserError("MPI was initialised without thread support",
                      "initialise MPI with MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE");
  }
  // Errors come back as return codes (turned into UserError), not as an abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return std::make_unique<MpiCommunicator>(o);
}

}  // namespace ddp::dist
