#include "sys/job_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "sys/fd.h"

namespace ddp::sys {
namespace {

const char* kMarker = ".launcher";

// Removes everything below the directory `dirfd` with system calls only
// (getdents64, unlinkat): the guardian runs in a child forked from a
// process that may have other threads, where malloc and stdio are unsafe.
void remove_tree_at(int dirfd, int depth) {
  alignas(8) char buf[4096];
  for (;;) {
    if (::lseek(dirfd, 0, SEEK_SET) != 0) return;
    const ssize_t n = ::getdents64(dirfd, buf, sizeof buf);
    if (n <= 0) return;
    bool removed = false;
    for (ssize_t off = 0; off < n;) {
      const auto* d = reinterpret_cast<const struct dirent64*>(buf + off);
      off += d->d_reclen;
      if (std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
      if (::unlinkat(dirfd, d->d_name, 0) == 0) {
        removed = true;
        continue;
      }
      if (errno != EISDIR || depth >= 16) continue;
      const int sub = ::openat(dirfd, d->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) {
        remove_tree_at(sub, depth + 1);
        ::close(sub);
      }
      if (::unlinkat(dirfd, d->d_name, AT_REMOVEDIR) == 0) removed = true;
    }
    if (!removed) return;  // only what cannot be removed is left
  }
}

// Removes parent/name when it is a directory nobody holds the lock of.
// Returns true when it was removed.
bool remove_if_unlocked(int parent_fd, const char* name, bool need_marker) {
  const int fd = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  bool gone = false;
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && (!need_marker || ::faccessat(fd, kMarker, F_OK, 0) == 0)) {
    remove_tree_at(fd, 0);
    gone = ::unlinkat(parent_fd, name, AT_REMOVEDIR) == 0;
  }
  ::close(fd);  // releases the lock
  return gone;
}

// The guardian: waits until every write end of the pipe is closed (the
// launcher and all ranks have ended), then removes the directory unless a
// live launcher holds it. Async-signal-safe calls only (see remove_tree_at).
[[noreturn]] void guardian(int alive_read, const char* parent, const char* name) {
  ::prctl(PR_SET_NAME, "ddp-dir-guard");  // in ps and top, not a second copy of the launcher
  struct sigaction ign;
  std::memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU}) ::sigaction(sig, &ign, nullptr);
  const int keep = ::fcntl(alive_read, F_DUPFD_CLOEXEC, 10);
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int std_fd = 0; std_fd < 3 && null_fd >= 0; ++std_fd) ::dup2(null_fd, std_fd);
  if (keep < 0) ::_exit(1);
  ::close_range(3, static_cast<unsigned>(keep) - 1, 0);
  ::close_range(static_cast<unsigned>(keep) + 1, ~0U, 0);
  char c;
  for (;;) {
    const ssize_t n = ::read(keep, &c, 1);
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }
  const int parent_fd = ::open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  // The last holder of the lock is a process that is exiting: the kernel
  // may wake this read (its pipe end closed) before it drops its lock (its
  // directory descriptor closed). Retry for a while; a directory already
  // gone (its launcher removed it) ends the wait at once.
  for (int tries = 0; parent_fd >= 0 && tries < 500; ++tries) {
    if (remove_if_unlocked(parent_fd, name, false) || ::faccessat(parent_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) != 0) break;
    const struct timespec pause = {0, 10 * 1000 * 1000};
    ::nanosleep(&pause, nullptr);
  }
  ::_exit(0);
}

bool job_dir_name(const char* name) {
  return std::strncmp(name, "ddp-", 4) == 0 && std::strlen(name) == 10;  // mkdtemp's ddp-XXXXXX
}

}  // namespace

int sweep_job_dirs(const std::string& parent) {
  const int parent_fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent_fd < 0) return 0;
  std::vector<std::string> candidates;
  if (DIR* d = ::fdopendir(::dup(parent_fd))) {
    while (const struct dirent* e = ::readdir(d)) {
      struct stat st {};
      if (job_dir_name(e->d_name) && ::fstatat(parent_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISDIR(st.st_mode) && st.st_uid == ::geteuid())
        candidates.push_back(e->d_name);
    }
    ::closedir(d);
  }
  int removed = 0;
  for (const auto& name : candidates) removed += remove_if_unlocked(parent_fd, name.c_str(), true) ? 1 : 0;
  ::close(parent_fd);
  return removed;
}

JobDir::JobDir(const std::string& parent) {
  sweep_job_dirs(parent);
  std::string templ = parent + "/ddp-XXXXXX";
  if (!::mkdtemp(templ.data()))
    throw UserError("cannot create a rendezvous directory in " + parent + ": " + std::strerror(errno),
                    "set TMPDIR to a writable directory");
  path_ = templ;
  // Lock first, then mark: a marked directory is always one whose launcher
  // held the lock (see the header).
  lock_fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock_fd_ >= 0 && ::flock(lock_fd_, LOCK_EX) == 0) {
    const int m = ::openat(lock_fd_, kMarker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (m >= 0) {
      write_all(m, std::to_string(::getpid()).c_str());
      ::close(m);
    }
  }
  int alive[2];
  if (::pipe2(alive, O_CLOEXEC) != 0) return;  // no guardian: the sweep is left
  alive_write_ = alive[1];
  start_guardian(alive[0]);
  ::close(alive[0]);
}

void JobDir::start_guardian(int alive_read) {
  const auto slash = path_.find_last_of('/');
  const std::string parent = slash == 0 ? "/" : path_.substr(0, slash), name = path_.substr(slash + 1);
  const pid_t middle = ::fork();
  if (middle == 0) {
    ::setsid();  // away from the job's process group and terminal
    if (::fork() == 0) guardian(alive_read, parent.c_str(), name.c_str());
    ::_exit(0);
  }
  if (middle > 0)
    while (::waitpid(middle, nullptr, 0) < 0 && errno == EINTR) {
    }
}

JobDir::~JobDir() {
  if (lock_fd_ >= 0) {
    remove_tree_at(lock_fd_, 0);
    ::rmdir(path_.c_str());
    ::close(lock_fd_);
  } else {
    const auto slash = path_.find_last_of('/');
    const int parent_fd = ::open(path_.substr(0, slash).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parent_fd >= 0) {
      remove_if_unlocked(parent_fd, path_.c_str() + slash + 1, false);
      ::close(parent_fd);
    }
  }
  if (alive_write_ >= 0) ::close(alive_write_);  // the guardian finds nothing left and ends
}

}  // namespace ddp::sys
