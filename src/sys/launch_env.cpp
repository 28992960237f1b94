#include "sys/launch_env.h"

#include "common/error.h"
#include "sys/env.h"

namespace ddp::sys {
namespace {

const char* kRankHint = "a whole number (the launcher's rank numbering)";

int lenient(const char* name) { return try_env_int(name).value_or(-1); }

}  // namespace

EnvPlace place_from_env() {
  EnvPlace p;
  p.rank = env_int(kRankVar, -1, kRankHint);
  p.world_size = env_int(kWorldSizeVar, -1, kRankHint);
  p.local_rank = env_int(kLocalRankVar, -1, kRankHint);
  p.local_world_size = env_int(kLocalWorldSizeVar, -1, kRankHint);
  if (p.world_size == 0) throw UserError("WORLD_SIZE=0 is not a valid world size", "WORLD_SIZE must be at least 1");
  if (p.rank >= 0 && p.world_size > 0 && p.rank >= p.world_size)
    throw UserError("RANK=" + std::to_string(p.rank) + " is out of range for WORLD_SIZE=" +
                        std::to_string(p.world_size),
                    "RANK must be in [0, WORLD_SIZE)");
  return p;
}

bool launched_by_launcher() { return env_set(kRankVar) && env_set(kWorldSizeVar); }

std::string rank_as_given() { return env_string(kRankVar); }

bool launched_by_mpi() { return env_set("OMPI_COMM_WORLD_SIZE") || env_set("PMIX_RANK") || env_set("PMI_RANK"); }

MpiPlace mpi_place_from_env() {
  MpiPlace p;
  p.rank = lenient("OMPI_COMM_WORLD_RANK");
  if (p.rank < 0) p.rank = lenient("PMIX_RANK");
  if (p.rank < 0) p.rank = lenient("PMI_RANK");
  p.openmpi_size = lenient("OMPI_COMM_WORLD_SIZE");
  p.size = p.openmpi_size >= 0 ? p.openmpi_size : lenient("PMI_SIZE");
  p.local_rank = lenient("OMPI_COMM_WORLD_LOCAL_RANK");
  return p;
}

int ranks_on_this_machine(int world) {
  for (const char* name : {kLocalWorldSizeVar, "OMPI_COMM_WORLD_LOCAL_SIZE"}) {
    const int n = lenient(name);
    if (n > 0 && n <= world) return n;
  }
  return world;
}

}  // namespace ddp::sys
