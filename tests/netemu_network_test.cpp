// The emulated network itself: its links have the rate asked for, the round
// trip is measured, a node's commands run in its namespace on its cores,
// and nothing outlives it. Needs root; skips itself otherwise.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <linux/capability.h>
#include <sys/syscall.h>

#include <cstdio>
#include <memory>

#include "common/error.h"
#include "netemu/describe.h"
#include "netemu/measure.h"
#include "netemu/network.h"
#include "netemu_test_util.h"

using namespace ddp;
using namespace ddp::netemu;
using namespace netemu_test;

namespace {

NetworkOptions options(int nodes, const std::string& rate) {
  NetworkOptions o;
  o.nodes = nodes;
  o.link = parse_link_spec(rate);
  return o;
}

TEST(EmulatedNetwork, ALinkCarriesTcpAt80To100PercentOfItsRate) {
  NETEMU_REQUIRE_PRIVILEGES();
  EmulatedNetwork net(options(2, "1gbit"));
  for (const auto& [from, to] : {std::pair{0, 1}, std::pair{1, 0}}) {
    const Goodput g = measure_goodput(net, from, to, 2.0);
    std::printf("%s\n", describe_goodput(net, from, to, g).c_str());
    EXPECT_GE(g.bit_per_s, 0.8e9) << "node " << from << " -> " << to;
    EXPECT_LE(g.bit_per_s, 1.0e9) << "node " << from << " -> " << to << ": not shaped";
    EXPECT_GT(g.seconds, 1.0);
  }
}

TEST(EmulatedNetwork, TheRoundTripIsMeasuredAndReported) {
  NETEMU_REQUIRE_PRIVILEGES();
  EmulatedNetwork net(options(3, "1gbit"));
  const RoundTrip r = measure_round_trip(net, 0, 2, 100);
  std::printf("%s\n", describe_round_trip(0, 2, r, 1).c_str());
  RecordProperty("round_trip_median_us", std::to_string(r.median_s * 1e6));
  EXPECT_EQ(r.count, 100);
  EXPECT_GT(r.min_s, 0);
  EXPECT_LE(r.min_s, r.median_s);
  EXPECT_LE(r.median_s, r.max_s);
  EXPECT_LT(r.median_s, 0.01);  // a veth path, not a WAN
  // A larger message pays for the rate. Each direction's shaper refills
  // its bucket while the other direction sends, so a round trip of 64 KiB
  // each way takes at least one direction's 64 KiB at the rate, 0.52 ms
  // (a real link: both, 1.05 ms), when the bucket is smaller than that.
  ASSERT_LT(net.bucket_bytes(), 64 * 1024);
  const RoundTrip big = measure_round_trip(net, 0, 2, 20, 64 * 1024);
  EXPECT_GT(big.median_s, 0.9 * 64 * 1024 * 8 / 1e9) << describe_round_trip(0, 2, big, 64 * 1024);
}

TEST(EmulatedNetwork, ACommandRunsInItsNodesNamespaceOnItsCores) {
  NETEMU_REQUIRE_PRIVILEGES();
  NetworkOptions o = options(2, "1gbit");
  o.cores_per_node = 1;
  EmulatedNetwork net(o);
  const std::vector<int> cores = allowed_cores();
  apps_test::TempDir tmp;
  for (int i = 0; i < 2; ++i) {
    const Node& n = net.node(i);
    EXPECT_EQ(n.address, "10.78.0." + std::to_string(i + 1));
    EXPECT_EQ(n.iface, "eth0");
    ASSERT_EQ(n.cores.size(), 1u);
    EXPECT_EQ(n.cores[0], cores[static_cast<size_t>(i) % cores.size()]);
    // The node's own view: its address on its interface, its core mask.
    apps_test::Proc p(net.command(i, {"/bin/sh", "-c", "ip -o -4 addr show dev eth0; grep Cpus_allowed_list "
                                                       "/proc/self/status; readlink /proc/self/ns/net"}),
                      tmp.path + "/node.log", {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}});
    ASSERT_TRUE(p.wait(10));
    EXPECT_EQ(p.exit_code(), 0) << p.output();
    const std::string out = p.output();
    EXPECT_NE(out.find("inet " + n.address + "/24"), std::string::npos) << out;
    EXPECT_NE(out.find("Cpus_allowed_list:\t" + std::to_string(n.cores[0]) + "\n"), std::string::npos) << out;
    EXPECT_NE(out.find("net:[" + std::to_string(net_inode(n.netns_path)) + "]"), std::string::npos) << out;
  }
  // The host's namespace has none of it.
  EXPECT_EQ(host_network_listing().find("10.78.0."), std::string::npos);
}

TEST(EmulatedNetwork, NothingIsLeftAfterItIsDestroyed) {
  NETEMU_REQUIRE_PRIVILEGES();
  const std::string before = host_network_listing();
  std::set<ino_t> namespaces;
  std::vector<pid_t> holders;
  {
    EmulatedNetwork net(options(3, "10gbit"));
    for (ino_t i : net.netns_inodes()) namespaces.insert(i);
    holders = net.holder_pids();
    EXPECT_EQ(namespaces.size(), 4u);  // a switch and three nodes
    EXPECT_EQ(holders_of(namespaces).size(), 4u);
    for (pid_t p : holders) EXPECT_TRUE(apps_test::alive(p));
  }
  expect_nothing_left(namespaces, holders, 0);
  EXPECT_EQ(host_network_listing(), before);
}

// A failure half-way (a node's setup) leaves nothing either: the delay is
// refused where the kernel has no netem, after the switch exists.
TEST(EmulatedNetwork, ADelayWithoutNetemIsOneClearErrorAndLeavesNothing) {
  NETEMU_REQUIRE_PRIVILEGES();
  const std::vector<pid_t> kids_before = apps_test::children_of(getpid());
  try {
    EmulatedNetwork net(options(2, "1gbit,100us"));
    GTEST_SKIP() << "this kernel has netem: the delay is honoured";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("no netem qdisc"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("give the rate alone (e.g. 1gbit)"), std::string::npos) << e.hint();
  }
  EXPECT_EQ(apps_test::children_of(getpid()), kids_before);
}

// Without CAP_NET_ADMIN: one error naming it and the fix, before anything
// is created (in a child that dropped the capability).
TEST(EmulatedNetwork, WithoutCapNetAdminOneErrorBeforeAnythingIsCreated) {
  NETEMU_REQUIRE_PRIVILEGES();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  if (child == 0) {
    __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct d[2]{};
    syscall(SYS_capget, &h, d);
    d[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
    syscall(SYS_capset, &h, d);
    std::string msg = "created";
    try {
      EmulatedNetwork net(options(2, "1gbit"));
    } catch (const UserError& e) {
      msg = std::string(e.what()) + " | " + e.hint();
    }
    msg += apps_test::children_of(getpid()).empty() ? "" : " | a child was started";
    (void)!write(fds[1], msg.data(), msg.size());
    _exit(0);
  }
  close(fds[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  waitpid(child, nullptr, 0);
  EXPECT_NE(msg.find("needs CAP_NET_ADMIN"), std::string::npos) << msg;
  EXPECT_NE(msg.find("run it as root"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("a child was started"), std::string::npos) << msg;
}

TEST(EmulatedNetwork, BadOptionsAreRefused) {
  EXPECT_THROW(EmulatedNetwork(options(0, "1gbit")), UserError);
  EXPECT_THROW(EmulatedNetwork(options(255, "1gbit")), UserError);
  NetworkOptions o = options(2, "1gbit");
  o.cores_per_node = -1;
  EXPECT_THROW(EmulatedNetwork{o}, UserError);
}

}  // namespace
