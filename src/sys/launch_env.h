// The variables launchers use to tell a process its place in a job: the one
// place that reads them (and names the ones our own launcher sets).
//
//  - torchrun style (our launcher, dist::launch_local; torchrun; any launcher
//    that follows it): RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE.
//  - MPI launchers, before MPI_Init: OpenMPI's mpirun sets
//    OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK / _LOCAL_SIZE; PMI and PMIx
//    launchers (Slurm's srun --mpi=pmix) set PMIX_RANK, PMI_RANK, PMI_SIZE.
#pragma once
#include <string>

namespace ddp::sys {

inline constexpr const char* kRankVar = "RANK";
inline constexpr const char* kWorldSizeVar = "WORLD_SIZE";
inline constexpr const char* kLocalRankVar = "LOCAL_RANK";
inline constexpr const char* kLocalWorldSizeVar = "LOCAL_WORLD_SIZE";
// Set by our launcher only: the private rendezvous directory and job id.
inline constexpr const char* kRendezvousDirVar = "DDP_RENDEZVOUS_DIR";
inline constexpr const char* kJobIdVar = "DDP_JOB_ID";

// This process's place in the job from a launcher's environment (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE as torchrun sets them). Fields
// not set are -1.
struct EnvPlace {
  int rank = -1, world_size = -1, local_rank = -1, local_world_size = -1;
};
// Throws UserError when a variable is set but is not a valid integer, or
// when RANK is not in [0, WORLD_SIZE).
EnvPlace place_from_env();

// True when RANK and WORLD_SIZE are both set (this process was started by a
// launcher).
bool launched_by_launcher();

// RANK exactly as set ("" when unset), for naming this process in messages
// before place_from_env() has checked it.
std::string rank_as_given();

// True when this process was started by an MPI launcher: mpirun / mpiexec
// of OpenMPI (OMPI_COMM_WORLD_SIZE) or a PMI/PMIx launcher such as Slurm's
// srun --mpi=pmix (PMIX_RANK, PMI_RANK).
bool launched_by_mpi();

// This process's place as the MPI launcher describes it before MPI_Init
// (OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK, else PMIX_RANK / PMI_RANK /
// PMI_SIZE); -1 where unknown or not a valid integer (never throws). For
// messages before MPI is up.
struct MpiPlace {
  int rank = -1, size = -1, local_rank = -1;
  int openmpi_size = -1;  // OMPI_COMM_WORLD_SIZE alone: this process runs under OpenMPI's mpirun
};
MpiPlace mpi_place_from_env();

// This machine's share of a world of `world` ranks: what the launcher says
// (torchrun-style LOCAL_WORLD_SIZE, or OpenMPI's OMPI_COMM_WORLD_LOCAL_SIZE),
// else all of them. A value that is not an integer in [1, world] is ignored.
int ranks_on_this_machine(int world);

}  // namespace ddp::sys
