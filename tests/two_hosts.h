// Two "machines" for the tests of jobs that span machines: two network
// namespaces joined by a veth pair (needs root; the tests skip without it).
#pragma once
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "apps_test_util.h"

namespace apps_test {

// Two network namespaces, "a" (10.77.0.1) and "b" (10.77.0.2), joined by a
// veth pair named veth0 on both sides: the only path between them. Removed
// (with whatever still runs in them) however the test ends; leftovers of a
// crashed earlier run (names carry the creating pid) are removed first.
struct TwoHosts {
  std::string a, b, error;
  std::string ip = which("ip");

  // SIGKILLs every process inside the namespace (a machine that went down).
  static void kill_processes(const std::string& ns) {
    const std::string tmp = "/tmp/ddpt-pids-" + std::to_string(getpid());
    Proc list({which("ip"), "netns", "pids", ns}, tmp);
    list.wait(10);
    std::istringstream in(read_file(tmp));
    for (pid_t p; in >> p;) kill(p, SIGKILL);
    std::filesystem::remove(tmp);
  }
  // Kills what still runs inside the namespace, then deletes it.
  static void remove(const std::string& ns) {
    kill_processes(ns);
    run_cmd({which("ip"), "netns", "del", ns});
  }
  static void remove_leftovers() {
    const std::string tmp = "/tmp/ddpt-list-" + std::to_string(getpid());
    Proc list({which("ip"), "netns", "list"}, tmp);
    list.wait(10);
    std::istringstream in(read_file(tmp));
    std::filesystem::remove(tmp);
    for (std::string line; std::getline(in, line);) {
      const std::string name = line.substr(0, line.find(' '));
      if (name.rfind("ddpt-", 0) != 0) continue;
      const pid_t owner = std::atoi(name.c_str() + 5);
      if (owner > 0 && owner != getpid() && kill(owner, 0) != 0) remove(name);
    }
  }

  TwoHosts() {
    if (ip.empty()) {
      error = "the ip command (iproute2) is not installed";
      return;
    }
    remove_leftovers();
    const std::string tag = "ddpt-" + std::to_string(getpid()) + "-";
    const std::string err = "/tmp/" + tag + "err";
    const int rc = run_cmd({ip, "netns", "add", tag + "a"}, err);
    const std::string why = read_file(err);
    std::filesystem::remove(err);
    if (rc != 0) {
      error = "cannot create a network namespace (needs root / CAP_NET_ADMIN): " + why;
      return;
    }
    a = tag + "a";
    if (run_cmd({ip, "netns", "add", tag + "b"}) != 0) {
      error = "cannot create a second network namespace";
      return;
    }
    b = tag + "b";
    const std::vector<std::vector<std::string>> setup = {
        {ip, "link", "add", "veth0", "netns", a, "type", "veth", "peer", "name", "veth0", "netns", b},
        {ip, "-n", a, "addr", "add", "10.77.0.1/24", "dev", "veth0"},
        {ip, "-n", b, "addr", "add", "10.77.0.2/24", "dev", "veth0"},
        {ip, "-n", a, "link", "set", "veth0", "up"},
        {ip, "-n", b, "link", "set", "veth0", "up"},
        {ip, "-n", a, "link", "set", "lo", "up"},
        {ip, "-n", b, "link", "set", "lo", "up"}};
    for (const auto& cmd : setup)
      if (run_cmd(cmd) != 0) {
        error = "network setup failed: " + cmd[1] + " " + cmd[2] + " " + cmd[3] + " ...";
        return;
      }
  }
  ~TwoHosts() {
    if (!b.empty()) remove(b);
    if (!a.empty()) remove(a);
  }
  std::vector<std::string> in(const std::string& ns) const { return {ip, "netns", "exec", ns}; }
};

}  // namespace apps_test
