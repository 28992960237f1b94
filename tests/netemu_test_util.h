// What the emulated-network tests share: the privilege check, and the
// search for anything a network left behind.
#pragma once
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "apps_test_util.h"
#include "netemu/privileges.h"

namespace netemu_test {

// Skips the calling test where this process may not emulate a network.
#define NETEMU_REQUIRE_PRIVILEGES()                                                                          \
  do {                                                                                                       \
    const std::string missing = ddp::netemu::missing_capabilities();                                         \
    if (!missing.empty()) GTEST_SKIP() << "needs " << missing << " (run the tests as root); `ctest -LE netemu` " \
                                          "leaves these tests out";                                          \
  } while (0)

inline std::vector<pid_t> all_pids() {
  std::vector<pid_t> pids;
  DIR* d = opendir("/proc");
  while (dirent* e = d ? readdir(d) : nullptr)
    if (const pid_t p = std::atoi(e->d_name); p > 0) pids.push_back(p);
  if (d) closedir(d);
  return pids;
}

// "net:[4026532001]" -> 4026532001; 0 when `link` is not a network namespace.
inline ino_t net_inode(const std::string& path) {
  char buf[64];
  const ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return 0;
  const std::string s(buf, static_cast<size_t>(n));
  return s.rfind("net:[", 0) == 0 ? std::strtoull(s.c_str() + 5, nullptr, 10) : 0;
}

inline ino_t own_net_inode() { return net_inode("/proc/self/ns/net"); }

// The children of every thread of `pid` (apps_test::children_of sees the
// main thread's only; emulated_cluster starts nodes from other threads).
inline std::vector<pid_t> children_of_all_threads(pid_t pid) {
  std::vector<pid_t> kids;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(tasks.c_str());
  while (dirent* e = d ? readdir(d) : nullptr) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(tasks + "/" + e->d_name + "/children");
    for (pid_t k; in >> k;) kids.push_back(k);
  }
  if (d) closedir(d);
  return kids;
}

// Network namespaces of `root`'s descendants (not `root`'s own, nor ours).
inline std::set<ino_t> descendant_namespaces(pid_t root, std::vector<pid_t>& descendants) {
  std::set<ino_t> found;
  std::vector<pid_t> todo = {root};
  while (!todo.empty()) {
    const pid_t p = todo.back();
    todo.pop_back();
    for (pid_t k : children_of_all_threads(p)) {
      descendants.push_back(k);
      todo.push_back(k);
      if (const ino_t i = net_inode("/proc/" + std::to_string(k) + "/ns/net"); i && i != own_net_inode())
        found.insert(i);
    }
  }
  return found;
}

// Processes that are in, or hold a descriptor of, any of `namespaces`.
inline std::vector<std::string> holders_of(const std::set<ino_t>& namespaces) {
  std::vector<std::string> found;
  for (pid_t p : all_pids()) {
    const std::string dir = "/proc/" + std::to_string(p);
    if (namespaces.count(net_inode(dir + "/ns/net"))) found.push_back("process " + std::to_string(p) + " is inside");
    DIR* d = opendir((dir + "/fd").c_str());
    while (dirent* e = d ? readdir(d) : nullptr)
      if (namespaces.count(net_inode(dir + "/fd/" + e->d_name)))
        found.push_back("process " + std::to_string(p) + " holds it open");
    if (d) closedir(d);
  }
  return found;
}

// What `ip` lists in this (the host's) namespace: its links and named namespaces.
inline std::string host_network_listing() {
  apps_test::TempDir tmp;
  std::string all;
  for (const auto& args : std::vector<std::vector<std::string>>{{"-o", "link"}, {"netns", "list"}}) {
    std::vector<std::string> argv = {"/usr/sbin/ip"};
    if (access(argv[0].c_str(), X_OK) != 0) argv[0] = "/sbin/ip";
    argv.insert(argv.end(), args.begin(), args.end());
    apps_test::Proc p(argv, tmp.path + "/ip.log");
    p.wait(10);
    all += p.output();
  }
  return all;
}

// Waits up to `seconds` until nothing holds the namespaces and every pid
// has ended; the test fails naming what is left.
inline void expect_nothing_left(const std::set<ino_t>& namespaces, const std::vector<pid_t>& pids, double seconds) {
  std::vector<std::string> left;
  for (int i = 0; i <= seconds * 10; ++i) {
    left = holders_of(namespaces);
    for (pid_t p : pids)
      if (apps_test::alive(p)) left.push_back("process " + std::to_string(p) + " still runs");
    if (left.empty()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const auto& l : left) ADD_FAILURE() << l;
}

}  // namespace netemu_test
