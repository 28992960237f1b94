// The key-value view of a rendezvous store that the generation protocol
// (dist/rendezvous.h) runs on: a Redis server or a shared directory. Values
// are short strings; put overwrites atomically; get never blocks. Values are
// stored as given: the protocol seals them (dist/store_tag.h).
#pragma once
#include <hiredis/hiredis.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/job_secret.h"

namespace ddp::dist {

class Kv {
 public:
  virtual ~Kv() = default;
  virtual void put(const std::string& key, const std::string& value) = 0;
  virtual std::optional<std::string> get(const std::string& key) = 0;
  virtual void remove(const std::string& key) = 0;
};

// A Redis server, logged in (dist/redis_auth.h). Throws UserError when the
// server cannot be reached, turns the login away or refuses a command.
class RedisKv final : public Kv {
 public:
  RedisKv(const std::string& host, int port, const RedisCredentials& credentials);
  ~RedisKv() override;
  RedisKv(const RedisKv&) = delete;
  RedisKv& operator=(const RedisKv&) = delete;
  // Keys expire after a day: nothing the protocol writes outlives a stuck job for long.
  void put(const std::string& key, const std::string& value) override;
  std::optional<std::string> get(const std::string& key) override;
  void remove(const std::string& key) override;
  // Deletes every key matching the glob pattern (SCAN, then DEL).
  void remove_matching(const std::string& pattern);

 private:
  redisReply* command(const std::vector<std::string>& args);
  std::string where_;
  redisContext* c_ = nullptr;
};

// One file per key in a shared directory; '/' in keys becomes '.'. Throws
// UserError when a file cannot be written.
class FileKv final : public Kv {
 public:
  explicit FileKv(std::string dir) : dir_(std::move(dir)) {}
  std::string path(const std::string& key) const;
  void put(const std::string& key, const std::string& value) override;
  std::optional<std::string> get(const std::string& key) override;
  void remove(const std::string& key) override;

 private:
  std::string dir_;
};

}  // namespace ddp::dist
