#include "dist/rendezvous_kv.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "dist/redis_auth.h"
#include "sys/fd.h"
#include "sys/random_id.h"

namespace ddp::dist {

RedisKv::RedisKv(const std::string& host, int port, const RedisCredentials& credentials)
    : where_("Redis " + host + ":" + std::to_string(port)) {
  struct timeval tv = {5, 0};
  c_ = redisConnectWithTimeout(host.c_str(), port, tv);
  if (!c_ || c_->err) {
    const std::string why = c_ ? c_->errstr : "out of memory";
    if (c_) redisFree(c_);
    c_ = nullptr;
    throw UserError("cannot reach the rendezvous server " + where_ + ": " + why,
                    "start redis-server there (reachable from every node: bind to its network address and "
                    "allow the port), or fix the address in --rendezvous");
  }
  redisSetTimeout(c_, tv);
  try {
    redis_login(c_, credentials, where_);
  } catch (...) {
    redisFree(c_);
    c_ = nullptr;
    throw;
  }
}

RedisKv::~RedisKv() {
  if (c_) redisFree(c_);
}

void RedisKv::put(const std::string& key, const std::string& value) {
  freeReplyObject(command({"SET", key, value, "EX", "86400"}));
}

std::optional<std::string> RedisKv::get(const std::string& key) {
  redisReply* r = command({"GET", key});
  std::optional<std::string> out;
  if (r->type == REDIS_REPLY_STRING) out = std::string(r->str, r->len);
  freeReplyObject(r);
  return out;
}

void RedisKv::remove(const std::string& key) { freeReplyObject(command({"DEL", key})); }

void RedisKv::remove_matching(const std::string& pattern) {
  std::string cursor = "0";
  do {
    redisReply* r = command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
      cursor = std::string(r->element[0]->str, r->element[0]->len);
      std::vector<std::string> del = {"DEL"};
      for (size_t i = 0; i < r->element[1]->elements; ++i)
        del.emplace_back(r->element[1]->element[i]->str, r->element[1]->element[i]->len);
      freeReplyObject(r);
      if (del.size() > 1) freeReplyObject(command(del));
    } else {
      freeReplyObject(r);
      break;
    }
  } while (cursor != "0");
}

redisReply* RedisKv::command(const std::vector<std::string>& args) {
  redisReply* r = redis_command_argv(c_, args);
  if (!r)
    throw UserError("lost the rendezvous server " + where_ + " during " + args[0] + ": " + c_->errstr,
                    "keep redis-server running until every rank has started training");
  if (r->type == REDIS_REPLY_ERROR) {
    std::string why(r->str, r->len);
    freeReplyObject(r);
    const std::string hint = redis_error_hint(why, args[0]);
    if (auto dot = why.find(". "); dot != std::string::npos) why.resize(dot + 1);  // Redis explains at length
    throw UserError("the rendezvous server " + where_ + " refused " + args[0] + ": " + why, hint);
  }
  return r;
}

std::string FileKv::path(const std::string& key) const {
  std::string name = key;
  for (char& c : name)
    if (c == '/') c = '.';
  return dir_ + "/" + name;
}

void FileKv::put(const std::string& key, const std::string& value) {
  const std::string final_path = path(key);
  const std::string tmp = dir_ + "/.tmp." + sys::random_hex();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  bool ok = fd >= 0 && sys::write_all(fd, value.data(), value.size());
  if (fd >= 0) ok = (::close(fd) == 0) && ok;
  if (!ok || ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw UserError("cannot write " + final_path + ": " + std::strerror(err),
                    "the rendezvous directory must be writable by every rank");
  }
}

void FileKv::remove(const std::string& key) { ::unlink(path(key).c_str()); }

std::optional<std::string> FileKv::get(const std::string& key) {
  int fd = ::open(path(key).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string s;
  char buf[256];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 && s.size() < 65536) s.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return s;
}

}  // namespace ddp::dist
