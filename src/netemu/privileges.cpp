#include "netemu/privileges.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"

namespace ddp::netemu {

namespace {

bool has_effective(const __user_cap_data_struct (&data)[2], int cap) {
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

}  // namespace

std::string missing_capabilities() {
  // The raw system call: libcap is not a dependency of the project.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &header, data) != 0) return "CAP_NET_ADMIN and CAP_SYS_ADMIN (capget failed)";
  const bool net = has_effective(data, CAP_NET_ADMIN), sys = has_effective(data, CAP_SYS_ADMIN);
  if (net && sys) return "";
  if (!net && !sys) return "CAP_NET_ADMIN and CAP_SYS_ADMIN";
  return net ? "CAP_SYS_ADMIN" : "CAP_NET_ADMIN";
}

void require_capabilities() {
  const std::string missing = missing_capabilities();
  if (missing.empty()) return;
  // File capabilities (setcap) on our program would not help: ip, tc and
  // nsenter run as child processes and do not inherit them.
  throw UserError("emulating a network needs " + missing +
                      " (network namespaces, veth links and tc qdiscs), which this process does not have",
                  "run it as root (sudo), or in a container started with --cap-add NET_ADMIN --cap-add SYS_ADMIN");
}

}  // namespace ddp::netemu
