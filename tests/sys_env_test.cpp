// Reading the environment and building a child's (src/sys/env.h). Each case
// runs in a forked child, so the variables it sets do not leak.
#include "sys/env.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "test_util.h"

using namespace ddp::sys;
using test_util::in_child;

TEST(Env, StringsAndSetness) {
  EXPECT_EQ(in_child([] {
              ::setenv("DDP_T_A", "x", 1);
              ::setenv("DDP_T_EMPTY", "", 1);
              ::unsetenv("DDP_T_NONE");
              CHILD_CHECK(env_set("DDP_T_A"));
              CHILD_CHECK(!env_set("DDP_T_EMPTY"));
              CHILD_CHECK(!env_set("DDP_T_NONE"));
              CHILD_CHECK(env_string("DDP_T_A", "f") == "x");
              CHILD_CHECK(env_string("DDP_T_EMPTY", "f") == "f");
              CHILD_CHECK(env_string("DDP_T_NONE") == "");
              return 0;
            }),
            0);
}

TEST(Env, IntegersAreCheckedAndJunkNamed) {
  EXPECT_EQ(in_child([] {
              ::unsetenv("DDP_T_N");
              CHILD_CHECK(env_int("DDP_T_N", 7) == 7);
              CHILD_CHECK(!try_env_int("DDP_T_N"));
              ::setenv("DDP_T_N", "42", 1);
              CHILD_CHECK(env_int("DDP_T_N", 7) == 42);
              CHILD_CHECK(try_env_int("DDP_T_N") == 42);
              for (const char* bad : {"-1", "4x", "x", "99999999999", " "}) {
                ::setenv("DDP_T_N", bad, 1);
                CHILD_CHECK(!try_env_int("DDP_T_N"));
                try {
                  env_int("DDP_T_N", 7, "a whole number of apples");
                  return 1;
                } catch (const ddp::UserError& e) {
                  CHILD_CHECK(std::string(e.what()).find(std::string("DDP_T_N='") + bad + "'") != std::string::npos);
                  CHILD_CHECK(e.hint().find("a whole number of apples") != std::string::npos);
                }
              }
              return 0;
            }),
            0);
}

TEST(Env, ChildEnvironmentReplacesAndAdds) {
  EXPECT_EQ(in_child([] {
              ::setenv("DDP_T_KEEP", "k", 1);
              ::setenv("DDP_T_REPLACE", "old", 1);
              const auto env = environment_with({{"DDP_T_REPLACE", "new"}, {"DDP_T_ADD", "a"}});
              auto count = [&](const std::string& s) { return std::count(env.begin(), env.end(), s); };
              CHILD_CHECK(count("DDP_T_KEEP=k") == 1);
              CHILD_CHECK(count("DDP_T_REPLACE=old") == 0);
              CHILD_CHECK(count("DDP_T_REPLACE=new") == 1);
              CHILD_CHECK(count("DDP_T_ADD=a") == 1);
              CHILD_CHECK(env.back() == "DDP_T_ADD=a");  // the overrides come last, in order
              return 0;
            }),
            0);
}
