// Runs a program as an MPI job on this machine through OpenMPI's mpirun, for
// users who start `train_parallel --backend mpi --world-size N` themselves.
//
//  - mpirun is looked up in PATH; a missing mpirun is a UserError that says
//    how to install it.
//  - --oversubscribe when N exceeds the cores (mpirun refuses otherwise);
//    --bind-to none when a rank runs more than one thread (mpirun would pin
//    all of a rank's threads to one core); as root, OMPI_ALLOW_RUN_AS_ROOT
//    and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM are set (mpirun refuses otherwise).
//  - mpirun's standard error passes through unchanged while its report is
//    read: when a rank dies, one line names it and the cause ("rank 1 was
//    killed by signal 9 (SIGKILL)", "rank 1 exited with status 1"), after
//    mpirun's own report.
//  - SIGINT / SIGTERM / SIGHUP are passed to mpirun, which stops the ranks;
//    mpirun dies with this process (PR_SET_PDEATHSIG).
#pragma once
#include <string>
#include <vector>

#include "dist/launcher.h"
#include "sys/env.h"

namespace ddp::dist {

struct MpirunOptions {
  int world_size = 1;
  std::vector<std::string> argv;  // the program (an absolute path) and its arguments
  sys::EnvVars env;               // extra variables for mpirun and the ranks
  int cores = 1;                  // of this machine: more ranks than this needs --oversubscribe
  int threads_per_rank = 1;
  std::string job_name = "mpirun";  // prefix of this launcher's messages
  std::string mpirun = "mpirun";    // a name looked up in PATH (sys::find_executable), or a path
};

// mpirun's arguments (without the mpirun path) for these options.
std::vector<std::string> mpirun_arguments(const MpirunOptions& options);

// What mpirun reported about the first rank that failed, parsed from its
// report: "rank 1 was killed by signal 9 (SIGKILL)", "rank 1 exited with
// status 3", or "" when `text` holds no such report.
std::string mpirun_failure(const std::string& text);

// Runs the job; returns mpirun's exit status (128 + signal when interrupted)
// and fills *outcome when given (the failed rank and cause from mpirun's
// report; -1 and "mpirun exited with status N" when it names none).
// Throws UserError when mpirun is missing or cannot be started.
int launch_mpirun(const MpirunOptions& options, LaunchOutcome* outcome = nullptr);

}  // namespace ddp::dist
