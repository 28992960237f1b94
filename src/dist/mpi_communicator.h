// The MPI implementation of Communicator (OpenMPI): MPI_COMM_WORLD, in-place
// MPI_Iallreduce / MPI_Ibcast / MPI_Ibarrier, completed by polling.
//
// Why polling: OpenMPI makes no progress outside MPI calls, and a blocking
// MPI call spins on the CPU for as long as it waits for a peer, and can
// never give up on a silent one (see Failure). The gradient synchroniser's
// communication thread, where there is one (--overlap thread), shares its
// core with backward. So each operation starts a non-blocking collective
// and tests it: in a tight loop for the first `spin` microseconds, then with `poll`
// microsecond sleeps between tests (1 us timer slack for the calling
// thread). The spin is long (1 ms by default) because the rank that
// waits is the one that arrived first: the others are still computing, so
// its core has slack until they arrive; sleeping there instead costs a
// timer wake-up per test and makes the
// later rank wait for that wake-up. The sleeps bound what a peer that is
// far behind (a checkpoint, an oversubscribed core) can cost.
// docs/performance.md ("MPI details") has the measurements.
//
// Failure: MPI itself ends the whole job when a rank dies (mpirun names the
// rank). A peer that is alive but silent for longer than `timeout` makes
// the waiting operation throw a UserError naming it; the rank then exits
// non-zero without finalising MPI (see below), and mpirun ends the job
// instead of letting it hang. Errors an MPI call returns become UserError
// too (MPI_ERRORS_RETURN).
//
// MPI is initialised (MPI_Init_thread, asking for MPI_THREAD_MULTIPLE; at
// least MPI_THREAD_SERIALIZED is required, which the thread rule in
// communicator.h satisfies) by the first make_mpi_communicator() of the
// process and finalised when that communicator is destroyed normally; when
// it is destroyed by an exception unwinding the stack, MPI is not finalised:
// the process then exits non-zero and mpirun ends the job. MPI can be
// initialised only once per process.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "dist/communicator.h"

namespace ddp::dist {

struct MpiOptions {
  std::chrono::milliseconds timeout{60000};  // longest wait for peers in one operation
  int spin_us = 1000;                        // busy testing before sleeping between tests
  int poll_us = 20;                          // sleep between tests after that (0: always spin)
  // All-reduce as a ring, unless the user chose an algorithm (see
  // make_mpi_communicator). Turn off when ranks share cores: each of the
  // ring's 2(N-1) rounds then waits for a peer to be scheduled, and the
  // binomial tree's 2 log2(N) rounds are faster (docs/performance.md).
  bool ring_allreduce = true;
};

// Options from the environment: DDP_MPI_SPIN_US, DDP_MPI_POLL_US (integers
// >= 0) override the defaults. Throws UserError for invalid values.
MpiOptions mpi_options_from_env(MpiOptions defaults = {});

// Joins MPI_COMM_WORLD. Throws UserError when MPI cannot be initialised or
// gives too little thread support.
std::unique_ptr<Communicator> make_mpi_communicator(const MpiOptions& options = {});

// The all-reduce algorithm OpenMPI was told to use, for the results:
// "ring", "binomial", "rabenseifner", "recursive doubling", or "libnbc
// default" (a binomial tree for in-place buffers or < 4 ranks).
std::string mpi_allreduce_algorithm();

}  // namespace ddp::dist
