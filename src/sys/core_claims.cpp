#include "sys/core_claims.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "sys/env.h"

namespace ddp::sys {
namespace {

struct flock one_byte(short type, int slot) {
  struct flock l {};
  l.l_type = type;
  l.l_whence = SEEK_SET;
  l.l_start = slot;
  l.l_len = 1;
  return l;
}

bool held_by_others(int fd, int slot) {
  struct flock l = one_byte(F_WRLCK, slot);
  return ::fcntl(fd, F_OFD_GETLK, &l) == 0 && l.l_type != F_UNLCK;
}

bool take(int fd, int slot) {
  struct flock l = one_byte(F_WRLCK, slot);
  return ::fcntl(fd, F_OFD_SETLK, &l) == 0;
}

bool usable_dir(const std::string& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT || ::mkdir(dir.c_str(), 01777) != 0) {
      if (errno != EEXIST) return false;
    } else {
      ::chmod(dir.c_str(), 01777);  // past the umask: every user's jobs claim here
    }
    if (::lstat(dir.c_str(), &st) != 0) return false;
  }
  return S_ISDIR(st.st_mode) && ::access(dir.c_str(), W_OK | X_OK) == 0;
}

}  // namespace

std::string core_claim_dir() {
  if (env_set("DDP_CORE_CLAIM_DIR")) return env_string("DDP_CORE_CLAIM_DIR");
  struct stat st {};
  if (::stat("/run/lock", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/run/lock", W_OK | X_OK) == 0)
    return "/run/lock/ddp-cores";
  return "/tmp/ddp-cores";
}

CoreClaims::CoreClaims(const std::string& dir) : dir_(dir), usable_(usable_dir(dir)) {}

int CoreClaims::fd(int cpu) {
  for (const auto& [c, f] : fds_)
    if (c == cpu) return f;
  const std::string path = dir_ + "/core-" + std::to_string(cpu);
  int f = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (f < 0 && errno == ENOENT) {
    f = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (f >= 0) ::fchmod(f, 0666);  // past the umask: other users' jobs lock it too
    else if (errno == EEXIST) f = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  }
  // Kept open for the life of the process, on purpose: closing it would drop the claims.
  fds_.push_back({cpu, f});
  return f;
}

int CoreClaims::count(int cpu) {
  const int f = fd(cpu);
  if (f < 0) return -1;
  int n = 0;
  for (int s = 0; s < kSlots; ++s) n += held_by_others(f, s) ? 1 : 0;
  return n;
}

bool CoreClaims::claim_free(int cpu) {
  const int f = fd(cpu);
  return f >= 0 && take(f, 0);
}

bool CoreClaims::claim_shared(int cpu) {
  const int f = fd(cpu);
  if (f < 0) return false;
  for (int s = 0; s < kSlots; ++s)
    if (take(f, s)) return true;
  return false;
}

}  // namespace ddp::sys
