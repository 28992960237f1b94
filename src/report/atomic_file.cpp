#include "report/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"

namespace ddp::report {

namespace fs = std::filesystem;

namespace {

std::string cause(int err) {
  switch (err) {
    case ENOSPC: return "the disk is full";
    case EDQUOT: return "the disk quota is exhausted";
    case EFBIG: return "the file size limit (ulimit -f) was reached";
    case EACCES:
    case EPERM: return "permission denied";
    case ENOENT: return "the directory does not exist";
    case EROFS: return "the file system is read-only";
    default: return std::strerror(err);
  }
}

[[noreturn]] void fail(const std::string& path, int err) {
  throw UserError("cannot write " + path + ": " + cause(err),
                  "free some space or choose another location (e.g. --save-results /tmp/results.json)");
}

std::string parent_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& contents) {
  // With RLIMIT_FSIZE a write past the limit raises SIGXFSZ, which would kill
  // the process; ignored, it becomes an EFBIG error we can report.
  signal(SIGXFSZ, SIG_IGN);
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, errno);
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail(path, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(path, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(path, err);
  }
  const int dir = ::open(parent_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void check_writable(const std::string& path) {
  const std::string dir = parent_of(path);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw UserError("cannot create directory " + dir + ": " + ec.message(), "choose a writable location");
  if (fs::is_directory(path, ec)) throw UserError(path + " is a directory", "give a file name, e.g. " + path + "/results.json");
  const std::string probe = dir + "/.write-test." + std::to_string(getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, errno);
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace ddp::report
