// The rendezvous store as the protocols that run on it see it: a Redis
// server or a shared directory (dist/rendezvous_kv.h), every value sealed
// with the job's tag (dist/store_tag.h). Used by the ranks' generation
// protocol (dist/rendezvous.h) and by the node launchers' restart rounds
// (launch/node_rounds.h).
//
// A value whose tag does not verify counts as absent, so that nobody
// outside the job can steer a rank or a launcher (nor can a key left by a
// run with another secret); each such key is reported once on standard
// error, and foreign_note() says so for timeout messages.
#pragma once
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "dist/rendezvous.h"

namespace ddp::dist {

class Kv;

class SealedKv {
 public:
  // `who` prefixes the report of a foreign value ("rank 3", "node 1").
  // Throws UserError when the store cannot be reached (RedisKv).
  SealedKv(RendezvousSpec spec, std::string who);
  ~SealedKv();
  SealedKv(const SealedKv&) = delete;
  SealedKv& operator=(const SealedKv&) = delete;

  // `scope` is the generation the tag covers ("" for the keys that name one).
  void put(const std::string& key, const std::string& scope, const std::string& value);
  std::optional<std::string> get(const std::string& key, const std::string& scope);
  void remove(const std::string& key);
  // For timeout messages: "" or why the wait may have failed.
  std::string foreign_note() const;

 private:
  std::unique_ptr<Kv> kv_;
  RendezvousSpec spec_;
  std::string who_;
  std::set<std::string> reported_;
};

}  // namespace ddp::dist
