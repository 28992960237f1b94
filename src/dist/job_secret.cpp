#include "dist/job_secret.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "sys/env.h"
#include "sys/random_id.h"

namespace ddp::dist {

std::string read_secret_file(const std::string& path, const std::string& what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw UserError("cannot read " + what + " from " + path + ": " + std::strerror(errno),
                    "give a file this user can read (the same content on every node)");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw UserError(path + " is not a regular file", "give the path of the file that holds " + what);
  }
  // As ssh does with private keys: a secret others may read is no secret.
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    ::close(fd);
    throw UserError(path + " (" + what + ") may be read or changed by other users",
                    "make it private to its owner: chmod 600 " + path);
  }
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 && s.size() < (1u << 20)) s.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (!s.empty() && s.back() == '\r') s.pop_back();
  if (s.empty())
    throw UserError(path + " (" + what + ") is empty",
                    "write the secret into it, e.g.: head -c 32 /dev/urandom | base64 > " + path);
  return s;
}

std::string job_secret(const std::string& file) {
  const std::string s = file.empty() ? sys::env_string(kJobSecretVar) : read_secret_file(file, "the job secret");
  if (!s.empty() && s.size() < kMinSecretBytes)
    throw UserError("the job secret (" + (file.empty() ? std::string(kJobSecretVar) : file) + ") has only " +
                        std::to_string(s.size()) + " bytes",
                    "use at least " + std::to_string(kMinSecretBytes) +
                        " random bytes, the same on every node: head -c 32 /dev/urandom | base64");
  return s;
}

std::string new_job_secret() { return sys::random_hex(32); }

RedisCredentials redis_credentials(const std::string& password_file) {
  RedisCredentials c;
  c.user = sys::env_string(kRedisUserVar);
  c.password = password_file.empty() ? sys::env_string(kRedisPasswordVar)
                                     : read_secret_file(password_file, "the Redis password");
  if (!c.user.empty() && c.password.empty())
    throw UserError(std::string(kRedisUserVar) + "=" + c.user + " names a Redis user but no password was given",
                    std::string("set ") + kRedisPasswordVar + " or --redis-password-file PATH (never on the "
                    "command line)");
  return c;
}

}  // namespace ddp::dist
