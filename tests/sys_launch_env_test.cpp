// The launcher variables (src/sys/launch_env.h): torchrun's and MPI
// launchers'. Variables are set for one test and restored afterwards, or set
// in a forked child.
#include "sys/launch_env.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "common/error.h"
#include "test_util.h"

using namespace ddp;
using namespace ddp::sys;
using test_util::error_of;
using test_util::in_child;
using Env = test_util::ScopedEnv;

TEST(RendezvousEnv, TorchrunVariables) {
  Env env;
  env.set("RANK", "3");
  env.set("WORLD_SIZE", "8");
  env.set("LOCAL_RANK", "1");
  env.set("LOCAL_WORLD_SIZE", "2");
  auto p = place_from_env();
  EXPECT_EQ(p.rank, 3);
  EXPECT_EQ(p.world_size, 8);
  EXPECT_EQ(p.local_rank, 1);
  EXPECT_EQ(p.local_world_size, 2);
  env.set("LOCAL_RANK", nullptr);
  env.set("LOCAL_WORLD_SIZE", nullptr);
  EXPECT_EQ(place_from_env().local_world_size, -1);
  env.set("RANK", "8");
  EXPECT_NE(error_of([] { place_from_env(); }).find("out of range"), std::string::npos);
  env.set("RANK", "x");
  EXPECT_NE(error_of([] { place_from_env(); }).find("RANK='x'"), std::string::npos);
  env.set("RANK", "0");
  env.set("WORLD_SIZE", "0");
  EXPECT_THROW(place_from_env(), UserError);
}

TEST(RanksOnThisMachine, ReadsTheLaunchersLocalCountElseTheWholeWorld) {
  // In a child: the variables must not leak into other tests.
  EXPECT_EQ(in_child([] {
              int failed = 0;
              ::unsetenv("LOCAL_WORLD_SIZE");
              ::unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
              failed += ddp::sys::ranks_on_this_machine(8) != 8;  // one machine
              ::setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
              failed += ddp::sys::ranks_on_this_machine(8) != 2;  // mpirun across 4 machines
              ::setenv("LOCAL_WORLD_SIZE", "4", 1);
              failed += ddp::sys::ranks_on_this_machine(8) != 4;  // torchrun-style first
              ::setenv("LOCAL_WORLD_SIZE", "9", 1);
              ::setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "junk", 1);
              failed += ddp::sys::ranks_on_this_machine(8) != 8;  // more than the world, or junk: ignored
              return failed;
            }),
            0);
}


TEST(LaunchEnv, LaunchedByALauncherNeedsRankAndWorldSize) {
  Env env;
  env.set("RANK", "1");
  env.set("WORLD_SIZE", nullptr);
  EXPECT_FALSE(launched_by_launcher());
  EXPECT_EQ(rank_as_given(), "1");
  env.set("WORLD_SIZE", "2");
  EXPECT_TRUE(launched_by_launcher());
  env.set("RANK", "");  // set but empty counts as unset
  EXPECT_FALSE(launched_by_launcher());
  EXPECT_EQ(rank_as_given(), "");
}

TEST(LaunchEnv, MpiPlaceFromOpenMpiElsePmi) {
  Env env;
  for (const char* k : {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "PMIX_RANK",
                        "PMI_RANK", "PMI_SIZE"})
    env.set(k, nullptr);
  EXPECT_FALSE(launched_by_mpi());
  MpiPlace p = mpi_place_from_env();
  EXPECT_EQ(p.rank, -1);
  EXPECT_EQ(p.size, -1);
  EXPECT_EQ(p.openmpi_size, -1);
  env.set("PMIX_RANK", "5");
  env.set("PMI_SIZE", "8");
  EXPECT_TRUE(launched_by_mpi());
  p = mpi_place_from_env();
  EXPECT_EQ(p.rank, 5);
  EXPECT_EQ(p.size, 8);
  EXPECT_EQ(p.openmpi_size, -1);  // not OpenMPI's mpirun
  env.set("OMPI_COMM_WORLD_RANK", "2");
  env.set("OMPI_COMM_WORLD_SIZE", "4");
  env.set("OMPI_COMM_WORLD_LOCAL_RANK", "0");
  p = mpi_place_from_env();
  EXPECT_EQ(p.rank, 2);
  EXPECT_EQ(p.size, 4);
  EXPECT_EQ(p.openmpi_size, 4);
  EXPECT_EQ(p.local_rank, 0);
  env.set("OMPI_COMM_WORLD_RANK", "junk");  // never throws: the next launcher's says
  EXPECT_EQ(mpi_place_from_env().rank, 5);
}
