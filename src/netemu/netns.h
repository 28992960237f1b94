// Anonymous network namespaces that vanish by themselves.
//
// A namespace made with unshare(CLONE_NEWNET) has no name in /run/netns: it
// lives as long as something refers to it (a process in it, an open
// /proc/<pid>/ns/net). NetnsHolder forks a small process that creates one
// and then only waits; the holder gets SIGKILL when the thread that created
// it ends (PR_SET_PDEATHSIG), so however its owner ends (return, exception,
// Ctrl-C, SIGKILL) the holder dies, and with the last process inside it the
// kernel destroys the namespace and every link and qdisc in it. Nothing
// needs sweeping at the next start.
#pragma once
#include <sys/types.h>

#include <string>

namespace ddp::netemu {

class NetnsHolder {
 public:
  // Starts the holder and waits until its namespace exists. Throws
  // ddp::UserError when the namespace cannot be created (e.g. without
  // CAP_SYS_ADMIN). Create it on a thread that outlives it (the main
  // thread): the holder dies with the thread that forked it.
  NetnsHolder();
  ~NetnsHolder();  // SIGKILL to the holder, and reaps it
  NetnsHolder(const NetnsHolder&) = delete;
  NetnsHolder& operator=(const NetnsHolder&) = delete;

  pid_t pid() const { return pid_; }
  // /proc/<pid>/ns/net: what nsenter --net= and setns() take.
  std::string path() const;
  // The namespace's identity (the nsfs inode): a process is inside it when
  // its /proc/<pid>/ns/net links to "net:[<inode>]".
  ino_t inode() const { return inode_; }

 private:
  pid_t pid_ = -1;
  ino_t inode_ = 0;
};

// While alive, the calling thread is inside the given network namespace;
// sockets it creates then belong to that namespace for their whole life,
// wherever they are used later. Throws ddp::UserError when it cannot enter.
class EnterNetns {
 public:
  explicit EnterNetns(const std::string& netns_path);
  ~EnterNetns();  // back to the thread's namespace before
  EnterNetns(const EnterNetns&) = delete;
  EnterNetns& operator=(const EnterNetns&) = delete;

 private:
  int back_fd_ = -1;
};

// The inode of the network namespace of process `pid` (0 if unreadable).
ino_t netns_inode_of(pid_t pid);

}  // namespace ddp::netemu
