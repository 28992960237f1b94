// The multi-machine rendezvous: URL parsing, addresses, and the generation
// protocol against stale keys (ranks as threads on a directory store), plus
// a Gloo job on top of it. (The launcher's variables: sys_launch_env_test.cpp.)
#include "dist/rendezvous.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "common/error.h"
#include "dist_test_util.h"
#include "test_util.h"

using namespace ddp;
using namespace ddp::dist;
using test_util::error_of;

namespace {

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST(RendezvousUrl, Redis) {
  auto s = parse_rendezvous("redis://10.0.0.5");
  EXPECT_EQ(s.kind, RendezvousSpec::Kind::redis);
  EXPECT_EQ(s.host, "10.0.0.5");
  EXPECT_EQ(s.port, 6379);
  EXPECT_EQ(s.job, "ddp");
  s = parse_rendezvous("redis://head-node:7000/exp-3.a_b");
  EXPECT_EQ(s.host, "head-node");
  EXPECT_EQ(s.port, 7000);
  EXPECT_EQ(s.job, "exp-3.a_b");
  s = parse_rendezvous("redis://[::1]:7001/j");
  EXPECT_EQ(s.host, "::1");
  EXPECT_EQ(s.port, 7001);
  EXPECT_EQ(parse_rendezvous("redis://h/").job, "ddp");
}

TEST(RendezvousUrl, File) {
  dist_test::TempDir tmp;
  auto s = parse_rendezvous("file://" + tmp.path + "/");
  EXPECT_EQ(s.kind, RendezvousSpec::Kind::file);
  EXPECT_EQ(s.dir, tmp.path);
  EXPECT_EQ(s.job, "ddp");
  EXPECT_EQ(parse_rendezvous("file://localhost" + tmp.path).dir, tmp.path);
}

TEST(RendezvousUrl, MistakesAreNamed) {
  EXPECT_NE(error_of([] { parse_rendezvous("tcp://h:1"); }).find("is not a rendezvous URL"), std::string::npos);
  EXPECT_NE(error_of([] { parse_rendezvous("redis://:6379"); }).find("names no Redis host"), std::string::npos);
  EXPECT_NE(error_of([] { parse_rendezvous("redis://h:0"); }).find("is not a TCP port"), std::string::npos);
  EXPECT_NE(error_of([] { parse_rendezvous("redis://h:x1"); }).find("is not a TCP port"), std::string::npos);
  EXPECT_NE(error_of([] { parse_rendezvous("redis://[::1"); }).find("unclosed"), std::string::npos);
  EXPECT_NE(error_of([] { parse_rendezvous("redis://h/a/b"); }).find("not a valid job id"), std::string::npos);
  EXPECT_NE(error_of([] { parse_rendezvous("file://tmp/x"); }).find("three slashes"), std::string::npos);
  EXPECT_NE(error_of([] { parse_rendezvous("file:///no/such/dir/xyz"); }).find("does not exist"), std::string::npos);
  EXPECT_THROW(check_job_id(""), UserError);
  EXPECT_THROW(check_job_id(std::string(65, 'a')), UserError);
  EXPECT_THROW(check_job_id(".."), UserError);
  EXPECT_NO_THROW(check_job_id("run-42_b.c"));
}

TEST(RendezvousAddress, InterfacesAndBindableHosts) {
  EXPECT_EQ(interface_ipv4("lo"), "127.0.0.1");
  const std::string e = error_of([] { interface_ipv4("nosuchif9"); });
  EXPECT_NE(e.find("has no IPv4 address"), std::string::npos) << e;
  EXPECT_NE(e.find("lo (127.0.0.1)"), std::string::npos) << e;  // says which ones exist
  EXPECT_NO_THROW(check_bindable("127.0.0.1"));
  EXPECT_NO_THROW(check_bindable("localhost"));
  EXPECT_NE(error_of([] { check_bindable("192.0.2.1"); }).find("not an address of this machine"), std::string::npos);
  EXPECT_NE(error_of([] { check_bindable("no-such-host.invalid"); }).find("cannot resolve"), std::string::npos);
}

namespace {

// Runs join_rendezvous for ranks 0..n-1 in threads; rank 0 starts after
// `rank0_delay` (the others meanwhile see whatever the store holds).
std::vector<GlooOptions> join_all(const RendezvousSpec& spec, int n, std::vector<std::string>& gens,
                                  std::chrono::milliseconds rank0_delay, std::vector<std::string>* errors = nullptr) {
  std::vector<GlooOptions> out(n);
  gens.assign(n, "");
  std::vector<std::string> errs(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      if (r == 0) std::this_thread::sleep_for(rank0_delay);
      GlooOptions base;
      base.rank = r;
      base.size = n;
      base.timeout = std::chrono::milliseconds(errors ? 600 : 20000);
      try {
        out[r] = join_rendezvous(spec, base, gens[r]);
      } catch (const UserError& e) {
        errs[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  if (errors) *errors = errs;
  for (int r = 0; r < n && !errors; ++r) EXPECT_EQ(errs[r], "") << "rank " << r;
  return out;
}

}  // namespace

TEST(RendezvousProtocol, StaleKeysOfACrashedRunDoNotBreakANewOne) {
  dist_test::TempDir tmp;
  auto spec = parse_rendezvous("file://" + tmp.path);
  spec.job = "job";
  // A crashed earlier run: its generation, a welcome, and a Gloo directory.
  write(tmp.path + "/job.gen", "00000000deadbeef");
  write(tmp.path + "/job.00000000deadbeef.welcome.1", "oldnonce");
  std::filesystem::create_directory(tmp.path + "/job.00000000deadbeef.gloo");
  std::vector<std::string> gens;
  auto opts = join_all(spec, 4, gens, std::chrono::milliseconds(300));  // the others read the stale one first
  ASSERT_FALSE(gens[0].empty());
  EXPECT_NE(gens[0], "00000000deadbeef");
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(gens[r], gens[0]) << "rank " << r;
    EXPECT_EQ(opts[r].rank, r);
    EXPECT_EQ(opts[r].size, 4);
    EXPECT_EQ(opts[r].rendezvous_dir, tmp.path + "/job." + gens[0] + ".gloo");
    EXPECT_TRUE(opts[r].redis_host.empty());
  }
  EXPECT_TRUE(std::filesystem::is_directory(opts[0].rendezvous_dir));
  // The hellos the others left in the stale generation were taken back.
  for (int r = 1; r < 4; ++r)
    EXPECT_FALSE(std::filesystem::exists(tmp.path + "/job.00000000deadbeef.hello." + std::to_string(r)));
  clear_generation(spec, gens[0], 4);
  EXPECT_FALSE(std::filesystem::exists(opts[0].rendezvous_dir));
  for (int r = 1; r < 4; ++r) {
    EXPECT_FALSE(std::filesystem::exists(tmp.path + "/job." + gens[0] + ".hello." + std::to_string(r)));
    EXPECT_FALSE(std::filesystem::exists(tmp.path + "/job." + gens[0] + ".welcome." + std::to_string(r)));
  }
  // The same job id again: a new generation.
  std::vector<std::string> again;
  join_all(spec, 2, again, std::chrono::milliseconds(0));
  EXPECT_NE(again[0], gens[0]);
  EXPECT_EQ(again[1], again[0]);
}

TEST(RendezvousProtocol, MissingRanksAreNamed) {
  dist_test::TempDir tmp;
  auto spec = parse_rendezvous("file://" + tmp.path);
  // Rank 0 alone in a world of 3.
  GlooOptions base;
  base.size = 3;
  base.timeout = std::chrono::milliseconds(300);
  std::string g;
  const std::string e0 = error_of([&] { join_rendezvous(spec, base, g); });
  EXPECT_NE(e0.find("2 of 2 other rank(s) did not join job 'ddp'"), std::string::npos) << e0;
  EXPECT_NE(e0.find("missing: 1, 2"), std::string::npos) << e0;
  // Rank 2 alone: the only generation is rank 0's of the failed attempt above.
  base.rank = 2;
  const std::string e2 = error_of([&] { join_rendezvous(spec, base, g); });
  EXPECT_NE(e2.find("rank 2: rank 0 of job 'ddp' did not answer"), std::string::npos) << e2;
  EXPECT_NE(e2.find("left over from an earlier run"), std::string::npos) << e2;
  // Nobody there at all.
  dist_test::TempDir empty;
  auto spec2 = parse_rendezvous("file://" + empty.path);
  const std::string e3 = error_of([&] { join_rendezvous(spec2, base, g); });
  EXPECT_NE(e3.find("no rank 0 has registered there"), std::string::npos) << e3;
}

TEST(RendezvousProtocol, UnreachableRedisIsNamed) {
  RendezvousSpec spec = parse_rendezvous("redis://127.0.0.1:1/j");
  GlooOptions base;
  base.size = 2;
  std::string g;
  const std::string e = error_of([&] { join_rendezvous(spec, base, g); });
  EXPECT_NE(e.find("cannot reach the rendezvous server Redis 127.0.0.1:1"), std::string::npos) << e;
}

// The protocol's options work for Gloo: a 3-rank job (threads) meets, sums,
// and clears its generation.
TEST(RendezvousProtocol, GlooJobOnTopOfIt) {
  dist_test::TempDir tmp;
  auto spec = parse_rendezvous("file://" + tmp.path);
  std::vector<std::string> gens;
  auto opts = join_all(spec, 3, gens, std::chrono::milliseconds(0));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int r = 0; r < 3; ++r)
    threads.emplace_back([&, r] {
      opts[r].timeout = std::chrono::milliseconds(20000);
      auto comm = make_gloo_communicator(opts[r]);
      std::vector<float> x(1000, static_cast<float>(r + 1));
      comm->allreduce_sum(x.data(), x.size());
      comm->barrier();
      if (r == 0) clear_generation(spec, gens[0], 3);
      if (x[0] == 6.0f && x[999] == 6.0f) ++ok;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 3);
  EXPECT_FALSE(std::filesystem::exists(opts[0].rendezvous_dir));
}
