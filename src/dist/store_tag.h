// Tags on the values in the rendezvous store, so that a rank accepts only
// what a rank of its own job wrote.
//
// Anyone who can write to the store (a Redis server others reach, a shared
// directory) could otherwise plant an address for a rank to connect to, or
// a generation for it to join. Every value a rank writes therefore carries
// an HMAC-SHA-256 tag (RFC 2104, OpenSSL's libcrypto) keyed by the job
// secret (dist/job_secret.h) over the job id, the generation, the key and
// the value, each length-prefixed: a tag copied under another key, another
// job or another generation does not verify. Tags are compared in constant
// time (CRYPTO_memcmp).
//
// What tags do not prevent: a stranger who writes a key before the job's
// rank does can still stop the job (Gloo's keys are write-once), and
// anyone who reads the store learns the ranks' addresses. See
// docs/security.md.
//
// Stored form: "\0DDP1" (5 bytes), the 32-byte tag, then the value. Without
// a secret, values are stored as they are.
#pragma once
#include <gloo/rendezvous/store.h>

#include <optional>
#include <string>
#include <string_view>

namespace ddp::dist {

struct TagScope {
  std::string secret;      // empty: no tags (a job without a secret)
  std::string job;         // job id
  std::string generation;  // the rendezvous generation; "0" where the store has none (a local job)
};

// The stored form of `value` under `key` (see above).
std::string seal(const TagScope& scope, const std::string& key, std::string_view value);

// The value back, or nullopt when the tag is missing or does not verify
// (with no secret: nullopt when the value carries a tag).
std::optional<std::string> unseal(const TagScope& scope, const std::string& key, std::string_view stored);

// The message and hint for a value that did not verify.
std::string foreign_value_text(const TagScope& scope, const std::string& key);
std::string foreign_value_hint(const TagScope& scope);

// Gloo's store with tags: set() seals, get() unseals and throws UserError
// (foreign_value_text) for a value that does not verify. Keys reach the
// inner store unchanged (put a PrefixStore above this one, so that the tag
// covers the full key). `who` prefixes messages ("rank 3").
class TaggedStore final : public gloo::rendezvous::Store {
 public:
  TaggedStore(gloo::rendezvous::Store& inner, TagScope scope, std::string who);
  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override { inner_.wait(keys); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    inner_.wait(keys, timeout);
  }

 private:
  gloo::rendezvous::Store& inner_;
  TagScope scope_;
  std::string who_;
};

}  // namespace ddp::dist
