#include "dist/sealed_kv.h"

#include <cstdio>

#include "dist/rendezvous_kv.h"
#include "dist/store_tag.h"

namespace ddp::dist {

namespace {

std::unique_ptr<Kv> open_kv(const RendezvousSpec& s) {
  if (s.kind == RendezvousSpec::Kind::redis) return std::make_unique<RedisKv>(s.host, s.port, s.redis);
  return std::make_unique<FileKv>(s.dir);
}

TagScope tag_scope(const RendezvousSpec& s, const std::string& generation) { return {s.secret, s.job, generation}; }

}  // namespace

SealedKv::SealedKv(RendezvousSpec spec, std::string who)
    : kv_(open_kv(spec)), spec_(std::move(spec)), who_(std::move(who)) {}

SealedKv::~SealedKv() = default;

void SealedKv::put(const std::string& key, const std::string& scope, const std::string& value) {
  kv_->put(key, seal(tag_scope(spec_, scope), key, value));
}

std::optional<std::string> SealedKv::get(const std::string& key, const std::string& scope) {
  auto stored = kv_->get(key);
  if (!stored) return std::nullopt;
  auto value = unseal(tag_scope(spec_, scope), key, *stored);
  if (!value && reported_.insert(key).second) {
    std::fprintf(stderr, "%s: ignoring '%s' in the rendezvous store: %s\n", who_.c_str(), key.c_str(),
                 spec_.secret.empty() ? "it carries a job-secret tag and this rank has no job secret"
                                      : "its value has no valid tag (someone else wrote it, or a run with "
                                        "another job secret left it)");
    std::fflush(stderr);
  }
  return value;
}

void SealedKv::remove(const std::string& key) { kv_->remove(key); }

std::string SealedKv::foreign_note() const {
  if (reported_.empty()) return "";
  return "; values without a valid tag were ignored (" + *reported_.begin() + (reported_.size() > 1 ? ", ..." : "") +
         "): someone else wrote into the job's keys, or the ranks hold different job secrets";
}

}  // namespace ddp::dist
