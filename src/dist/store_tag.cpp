#include "dist/store_tag.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <exception>

#include "common/error.h"

namespace ddp::dist {
namespace {

constexpr std::string_view kMagic("\0DDP1", 5);
constexpr size_t kTagBytes = 32;  // SHA-256

void append_field(std::string& msg, std::string_view field) {
  uint64_t n = field.size();
  for (int i = 0; i < 8; ++i) msg.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  msg.append(field);
}

// HMAC-SHA-256 over a domain label and the four length-prefixed fields.
std::string tag_of(const TagScope& s, const std::string& key, std::string_view value) {
  std::string msg;
  append_field(msg, "ddp rendezvous value v1");
  append_field(msg, s.job);
  append_field(msg, s.generation);
  append_field(msg, key);
  append_field(msg, value);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), s.secret.data(), static_cast<int>(s.secret.size()),
            reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), md, &len) ||
      len != kTagBytes)
    throw std::runtime_error("HMAC-SHA-256 failed (OpenSSL libcrypto)");
  return std::string(reinterpret_cast<const char*>(md), len);
}

bool has_tag(std::string_view stored) {
  return stored.size() >= kMagic.size() + kTagBytes && stored.substr(0, kMagic.size()) == kMagic;
}

}  // namespace

std::string seal(const TagScope& scope, const std::string& key, std::string_view value) {
  if (scope.secret.empty()) return std::string(value);
  std::string out(kMagic);
  out += tag_of(scope, key, value);
  out.append(value);
  return out;
}

std::optional<std::string> unseal(const TagScope& scope, const std::string& key, std::string_view stored) {
  if (scope.secret.empty()) {
    if (has_tag(stored)) return std::nullopt;
    return std::string(stored);
  }
  if (!has_tag(stored)) return std::nullopt;
  const std::string_view value = stored.substr(kMagic.size() + kTagBytes);
  const std::string want = tag_of(scope, key, value);
  if (CRYPTO_memcmp(want.data(), stored.data() + kMagic.size(), kTagBytes) != 0) return std::nullopt;
  return std::string(value);
}

std::string foreign_value_text(const TagScope& scope, const std::string& key) {
  if (scope.secret.empty())
    return "the rendezvous store's key '" + key +
           "' holds a value tagged with a job secret, but this rank has none";
  return "the rendezvous store's key '" + key +
         "' holds a value without a valid tag: someone else wrote into job '" + scope.job +
         "''s keys (or a rank of it was given a different job secret)";
}

std::string foreign_value_hint(const TagScope& scope) {
  if (scope.secret.empty())
    return "give every rank the same job secret (--secret-file PATH or DDP_JOB_SECRET)";
  return "give every rank the same job secret (--secret-file PATH or DDP_JOB_SECRET); keep the store private "
         "to the job (Redis: requirepass or an ACL user, bound to a private network; a directory only the job's "
         "user can write) and start again with a new --job-id (docs/security.md)";
}

TaggedStore::TaggedStore(gloo::rendezvous::Store& inner, TagScope scope, std::string who)
    : inner_(inner), scope_(std::move(scope)), who_(std::move(who)) {}

void TaggedStore::set(const std::string& key, const std::vector<char>& data) {
  const std::string sealed = seal(scope_, key, std::string_view(data.data(), data.size()));
  try {
    inner_.set(key, std::vector<char>(sealed.begin(), sealed.end()));
  } catch (const std::exception& e) {
    // Gloo's stores write each key once ("File already exists", "Key ...
    // already set"): whoever wrote it first wins.
    if (std::string(e.what()).find("already") == std::string::npos) throw;
    throw UserError(who_ + ": cannot write key '" + key +
                        "' into the rendezvous store: it is already there (someone else wrote into job '" +
                        scope_.job + "''s keys first, or another run with the same job id is running)",
                    "start again with a new --job-id, and keep the store private to the job (docs/security.md)");
  }
}

std::vector<char> TaggedStore::get(const std::string& key) {
  const std::vector<char> stored = inner_.get(key);
  const auto value = unseal(scope_, key, std::string_view(stored.data(), stored.size()));
  if (!value) throw UserError(who_ + ": " + foreign_value_text(scope_, key), foreign_value_hint(scope_));
  return std::vector<char>(value->begin(), value->end());
}

}  // namespace ddp::dist
