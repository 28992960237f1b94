#include "sys/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "common/error.h"
#include "sys/fd.h"

namespace ddp::sys {

namespace fs = std::filesystem;

namespace {

std::string describe_errno(int err) {
  switch (err) {
    case ENOSPC: return "disk full (no space left on device)";
    case EDQUOT: return "disk quota exceeded";
    case EFBIG: return "file too large (over the file size limit, ulimit -f, or the file system's maximum)";
    case EACCES:
    case EPERM: return "permission denied";
    case EROFS: return "read-only file system";
    case ENOENT: return "the directory does not exist";
    case ENOTDIR: return "a component of the path is not a directory";
    case EISDIR: return "it is a directory";
    case EIO: return "I/O error";
    case ENAMETOOLONG: return "the name is too long";
    default: return std::strerror(err);
  }
}

std::string errno_hint(int err) {
  switch (err) {
    case ENOSPC: return "free some disk space, or write to another directory";
    case EDQUOT: return "free some space within your quota, or write to another directory";
    case EFBIG: return "raise the file size limit (ulimit -f unlimited), or write to another file system";
    case EACCES:
    case EPERM: return "make the directory writable, or write to another directory";
    case EROFS: return "write to a writable directory";
    case ENOENT: return "create the directory first (mkdir -p), or choose another";
    case EISDIR: return "remove that directory or choose another path";
    default: return "check the path and the disk";
  }
}

void ignore_sigxfsz() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (::sigaction(SIGXFSZ, nullptr, &old) == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
      struct sigaction ign {};
      ign.sa_handler = SIG_IGN;
      sigemptyset(&ign.sa_mask);
      ::sigaction(SIGXFSZ, &ign, nullptr);
    }
  });
}

std::string parent_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

// The file a write to `given` must replace: through symbolic links to
// their target (renaming over the link would replace the link itself).
// Throws UserError when that exists and is not a regular file: renaming
// over a device (/dev/null, /dev/full), a FIFO or a socket would replace
// it with a plain file.
std::string file_to_replace(const std::string& given) {
  std::error_code ec;
  std::string path = given;
  if (fs::is_symlink(fs::symlink_status(given, ec))) {
    path = fs::weakly_canonical(given, ec).string();
    if (ec) throw UserError(given + ": cannot follow its symbolic link: " + ec.message(), "give the path of a file");
  }
  const fs::file_status st = fs::status(path, ec);
  if (fs::exists(st) && !fs::is_regular_file(st) && !fs::is_directory(st))
    throw UserError(given + " is not a regular file (" +
                        (fs::is_character_file(st) ? "a character device"
                         : fs::is_block_file(st)   ? "a block device"
                         : fs::is_fifo(st)         ? "a FIFO"
                                                   : "a socket or other special file") +
                        "): it would be replaced by the file written there",
                    "give the path of a regular file, e.g. /tmp/out.json");
  return path;
}

// An unnamed file in `dir` (O_TMPFILE): a process killed while writing it
// (SIGKILL, the OOM killer) leaves nothing behind. -1 where the file system
// cannot make one (errno EOPNOTSUPP, EISDIR or EINVAL: then a named one).
int open_unnamed(const std::string& dir) {
#ifdef O_TMPFILE
  return ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
#else
  errno = EOPNOTSUPP;
  return -1;
#endif
}

bool no_unnamed_files(int err) { return err == EOPNOTSUPP || err == EISDIR || err == EINVAL; }

}  // namespace

void write_file_atomic(const std::string& given, const std::vector<Piece>& pieces) {
  ignore_sigxfsz();
  const std::string path = file_to_replace(given);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = -1;
  bool tmp_exists = false;
  // Undoes everything and reports; the previous `path` has not been touched.
  auto failed = [&](int err, const std::string& while_doing) {
    if (fd >= 0) ::close(fd);
    if (tmp_exists) ::unlink(tmp.c_str());
    fd = -1;
    tmp_exists = false;
    throw UserError(path + ": cannot write: " + describe_errno(err) + " (while " + while_doing +
                        "); any previous file there is unchanged",
                    errno_hint(err));
  };

  // The contents go to an unnamed file, which gets the temporary name only
  // once complete and on disk, just before the rename: a kill leaves a
  // temporary file only inside that window of two system calls.
  fd = open_unnamed(parent_of(path));
  const bool unnamed = fd >= 0;
  const std::string file = unnamed ? "a new file in " + parent_of(path) : tmp;
  if (!unnamed) {
    if (!no_unnamed_files(errno)) failed(errno, "creating a file in " + parent_of(path));
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) failed(errno, "creating " + tmp);
    tmp_exists = true;
  }
  try {
    for (const Piece& p : pieces)
      if (!write_all(fd, p.data, p.size)) {
        const int err = errno;
        failed(err, "writing " + file);
      }
    if (::fsync(fd) != 0) failed(errno, "flushing " + file + " to disk");
    if (unnamed) {
      ::unlink(tmp.c_str());  // a leftover of an earlier process with this pid
      const std::string self = "/proc/self/fd/" + std::to_string(fd);
      if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0)
        failed(errno, "naming the new file " + tmp);
      tmp_exists = true;
    }
    int rc = ::close(fd);
    fd = -1;
    if (rc != 0) failed(errno, "closing " + tmp);
    if (::rename(tmp.c_str(), path.c_str()) != 0) failed(errno, "renaming " + tmp + " over it");
    tmp_exists = false;
  } catch (const UserError&) {
    throw;
  } catch (...) {  // e.g. bad_alloc while building a message: still clean up
    if (fd >= 0) ::close(fd);
    if (tmp_exists) ::unlink(tmp.c_str());
    throw;
  }

  // Make the rename itself durable. File systems that cannot fsync a
  // directory say EINVAL; only a real I/O error is worth reporting, and by now
  // the new file is in place.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int rc = ::fsync(dfd);
    int err = errno;
    ::close(dfd);
    if (rc != 0 && err == EIO)
      throw UserError(path + ": written, but flushing its directory to disk failed: I/O error",
                      "check the disk; the file may not survive a crash");
  }
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  write_file_atomic(path, {{contents.data(), contents.size()}});
}

void check_writable(const std::string& given, const std::string& example_name) {
  const std::string path = file_to_replace(given);
  const std::string dir = parent_of(path);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw UserError("cannot create directory " + dir + ": " + ec.message(), "choose a writable location");
  if (fs::is_directory(path, ec)) throw UserError(path + " is a directory", "give a file name, e.g. " + path + "/" + example_name);
  // The probe is an unnamed file where the file system allows one, so a
  // kill here leaves nothing either.
  const std::string probe = dir + "/.write-test." + std::to_string(getpid());
  int fd = open_unnamed(dir);
  const bool unnamed = fd >= 0;
  if (!unnamed && no_unnamed_files(errno)) fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    throw UserError(path + ": cannot write: " + describe_errno(err), errno_hint(err));
  }
  ::close(fd);
  if (!unnamed) ::unlink(probe.c_str());
}

}  // namespace ddp::sys
