#include "sys/env.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <set>

#include "common/error.h"

extern char** environ;

namespace ddp::sys {
namespace {

// `text` as an integer in [0, INT_MAX], or nullopt.
std::optional<int> parse_nonnegative(const char* text) {
  errno = 0;
  char* end = nullptr;
  const long x = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || x < 0 || x > INT_MAX) return std::nullopt;
  return static_cast<int>(x);
}

}  // namespace

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v && *v;
}

std::string env_string(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

int env_int(const char* name, int fallback, const std::string& expected) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  if (const auto x = parse_nonnegative(v)) return *x;
  throw UserError(std::string("environment variable ") + name + "='" + v + "' is not a non-negative integer",
                  std::string("set ") + name + " to " + expected + ", or unset it");
}

std::optional<int> try_env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return parse_nonnegative(v);
}

std::vector<std::string> environment_with(const EnvVars& overrides) {
  std::set<std::string> replaced;
  for (const auto& kv : overrides) replaced.insert(kv.first);
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    if (!replaced.count(entry.substr(0, entry.find('=')))) out.push_back(std::move(entry));
  }
  for (const auto& [k, v] : overrides) out.push_back(k + "=" + v);
  return out;
}

}  // namespace ddp::sys
