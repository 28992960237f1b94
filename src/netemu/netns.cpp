#include "netemu/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace ddp::netemu {

namespace {

// The holder, after fork: only async-signal-safe calls (the parent may have
// other threads holding locks). Reports errno (0: ready) through `report`.
[[noreturn]] void hold(pid_t parent, int report, int devnull) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(1);  // the owner died before prctl
  setpgid(0, 0);                      // a terminal's Ctrl-C goes to the owner, which tears down in order
  prctl(PR_SET_NAME, "netns-holder");  // what ps -o comm and top show
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);  // only SIGKILL ends it
  int err = unshare(CLONE_NEWNET) == 0 ? 0 : errno;
  (void)!write(report, &err, sizeof err);
  if (err != 0) _exit(1);
  // Hold nothing of the owner's open: a pipe the owner's reader waits on
  // must close when the owner goes.
  dup2(devnull, 0);
  dup2(devnull, 1);
  dup2(devnull, 2);
  close_range(3, ~0u, 0);
  for (;;) pause();
}

}  // namespace

NetnsHolder::NetnsHolder() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw UserError(std::string("cannot create a pipe: ") + std::strerror(errno));
  const int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) hold(parent, fds[1], devnull);
  const int fork_errno = errno;
  close(fds[1]);
  if (devnull >= 0) close(devnull);
  int err = fork_errno;
  if (pid_ > 0) {
    ssize_t got;
    while ((got = read(fds[0], &err, sizeof err)) < 0 && errno == EINTR) {
    }
    if (got != static_cast<ssize_t>(sizeof err)) err = ECHILD;
  }
  close(fds[0]);
  if (pid_ > 0 && err == 0) inode_ = netns_inode_of(pid_);
  if (err == 0 && inode_ != 0) return;
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  throw UserError(std::string("cannot create a network namespace: ") + std::strerror(err ? err : ESRCH),
                  err == EPERM ? "run as root (sudo), or in a container started with --cap-add SYS_ADMIN"
                               : "check that the kernel has network namespaces (CONFIG_NET_NS)");
}

NetnsHolder::~NetnsHolder() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

std::string NetnsHolder::path() const { return "/proc/" + std::to_string(pid_) + "/ns/net"; }

ino_t netns_inode_of(pid_t pid) {
  struct stat st {};
  if (stat(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), &st) != 0) return 0;
  return st.st_ino;
}

EnterNetns::EnterNetns(const std::string& netns_path) {
  back_fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  const int target = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  const int err = back_fd_ < 0 || target < 0 ? errno : setns(target, CLONE_NEWNET) == 0 ? 0 : errno;
  if (target >= 0) close(target);
  if (err == 0) return;
  if (back_fd_ >= 0) close(back_fd_);
  throw UserError("cannot enter the network namespace " + netns_path + ": " + std::strerror(err),
                  err == EPERM ? "run as root (sudo)" : "the emulated network is gone: start it again");
}

EnterNetns::~EnterNetns() {
  // Failing to return would leave this thread in a namespace that is about
  // to vanish, with every later socket in it: not a state to go on from.
  DDP_ASSERT(setns(back_fd_, CLONE_NEWNET) == 0, std::strerror(errno));
  close(back_fd_);
}

}  // namespace ddp::netemu
