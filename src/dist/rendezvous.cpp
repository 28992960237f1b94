#include "dist/rendezvous.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "common/error.h"
#include "dist/rendezvous_kv.h"
#include "dist/sealed_kv.h"
#include "sys/random_id.h"

namespace ddp::dist {
namespace {

using Clock = std::chrono::steady_clock;
const auto kPause = std::chrono::milliseconds(20);  // between polls of the store

const char* kUrlHint =
    "use redis://HOST[:PORT][/JOB] (a Redis server all ranks reach) or file:///ABSOLUTE/DIR (a directory "
    "all ranks share)";

int parse_port(const std::string& s, const std::string& url) {
  char* end = nullptr;
  errno = 0;
  long p = s.empty() ? -1 : std::strtol(s.c_str(), &end, 10);
  if (s.empty() || errno != 0 || *end != '\0' || p < 1 || p > 65535)
    throw UserError("rendezvous URL '" + url + "': '" + s + "' is not a TCP port", kUrlHint);
  return static_cast<int>(p);
}

std::string gen_key(const RendezvousSpec& s) { return s.job + "/gen"; }
std::string hello_key(const RendezvousSpec& s, const std::string& g, int r) {
  return s.job + "/" + g + "/hello/" + std::to_string(r);
}
std::string welcome_key(const RendezvousSpec& s, const std::string& g, int r) {
  return s.job + "/" + g + "/welcome/" + std::to_string(r);
}
std::string gloo_dir(const RendezvousSpec& s, const std::string& g) { return s.dir + "/" + s.job + "." + g + ".gloo"; }

std::string seconds_text(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

}  // namespace

void check_job_id(const std::string& job) {
  bool ok = !job.empty() && job.size() <= 64;
  for (char c : job) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
  if (!ok || job == "." || job == "..")
    throw UserError("'" + job + "' is not a valid job id",
                    "use 1 to 64 letters, digits, '-', '_' or '.', the same on every node");
}

RendezvousSpec parse_rendezvous(const std::string& url) {
  RendezvousSpec s;
  s.url = url;
  s.job = "ddp";
  if (url.rfind("redis://", 0) == 0) {
    s.kind = RendezvousSpec::Kind::redis;
    std::string rest = url.substr(8);
    if (auto slash = rest.find('/'); slash != std::string::npos) {
      s.job = rest.substr(slash + 1);
      rest.resize(slash);
      if (s.job.empty()) s.job = "ddp";
      check_job_id(s.job);
    }
    std::string port;
    if (!rest.empty() && rest[0] == '[') {  // [IPv6]:port
      auto close = rest.find(']');
      if (close == std::string::npos) throw UserError("rendezvous URL '" + url + "': unclosed '['", kUrlHint);
      s.host = rest.substr(1, close - 1);
      std::string tail = rest.substr(close + 1);
      if (!tail.empty()) {
        if (tail[0] != ':') throw UserError("rendezvous URL '" + url + "': expected ':PORT' after ']'", kUrlHint);
        port = tail.substr(1);
        s.port = parse_port(port, url);
      }
    } else {
      auto colon = rest.find(':');
      s.host = rest.substr(0, colon);
      if (colon != std::string::npos) s.port = parse_port(rest.substr(colon + 1), url);
    }
    if (s.host.empty()) throw UserError("rendezvous URL '" + url + "' names no Redis host", kUrlHint);
    return s;
  }
  if (url.rfind("file://", 0) == 0) {
    std::string path = url.substr(7);
    if (path.rfind("localhost/", 0) == 0) path = path.substr(9);
    if (path.empty() || path[0] != '/')
      throw UserError("rendezvous URL '" + url + "' needs an absolute directory (file:///shared/dir: three slashes)",
                      kUrlHint);
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw UserError("rendezvous directory " + path + " does not exist",
                      "create it on a file system every node mounts (the same path everywhere), or use redis://");
    if (::access(path.c_str(), R_OK | W_OK | X_OK) != 0)
      throw UserError("rendezvous directory " + path + " is not writable: " + std::strerror(errno),
                      "every rank needs read and write access to it");
    s.kind = RendezvousSpec::Kind::file;
    s.dir = path;
    return s;
  }
  throw UserError("'" + url + "' is not a rendezvous URL", kUrlHint);
}

std::string interface_ipv4(const std::string& iface) {
  struct ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0)
    throw UserError(std::string("cannot list the network interfaces: ") + std::strerror(errno), "use --host ADDR");
  std::string found;
  std::set<std::string> names;
  for (auto* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof buf);
    names.insert(std::string(a->ifa_name) + " (" + buf + ")");
    if (found.empty() && iface == a->ifa_name) found = buf;
  }
  ::freeifaddrs(list);
  if (!found.empty()) return found;
  std::string have;
  for (const auto& n : names) have += (have.empty() ? "" : ", ") + n;
  throw UserError("network interface '" + iface + "' has no IPv4 address on this machine",
                  "pick one of: " + (have.empty() ? std::string("(none)") : have) + "; or give --host ADDR");
}

void check_bindable(const std::string& host) {
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0)
    throw UserError("cannot resolve --host " + host + ": " + ::gai_strerror(rc),
                    "give an address of this machine that the other nodes reach, or --iface NAME");
  bool ok = false;
  int err = 0;
  for (auto* a = res; a && !ok; a = a->ai_next) {
    int fd = ::socket(a->ai_family, SOCK_STREAM, 0);
    if (fd < 0) {
      err = errno;
      continue;
    }
    // Port 0: any free port; only the address matters here.
    if (a->ai_family == AF_INET) reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_port = 0;
    if (a->ai_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_port = 0;
    ok = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0;
    if (!ok) err = errno;
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (!ok)
    throw UserError("cannot listen on " + host + ": " + std::strerror(err) +
                        (err == EADDRNOTAVAIL ? " (it is not an address of this machine)" : ""),
                    "give an address of this machine (--host) or a network interface (--iface NAME)");
}

namespace {

// What rank 0 does: publish a fresh generation, then welcome every rank
// that says hello into it. Returns the generation.
std::string lead(const RendezvousSpec& spec, const GlooOptions& base, SealedKv& kv, Clock::time_point deadline) {
  const int size = base.size;
  const std::string g = sys::random_hex();
  if (spec.kind == RendezvousSpec::Kind::file) {
    const std::string d = gloo_dir(spec, g);
    if (::mkdir(d.c_str(), 0755) != 0)
      throw UserError("rank 0: cannot create " + d + ": " + std::strerror(errno),
                      "the rendezvous directory must be writable by every rank");
  }
  kv.put(gen_key(spec), "", g);
  std::vector<bool> welcomed(size, false);
  int missing = size - 1;
  while (missing > 0) {
    for (int r = 1; r < size; ++r) {
      if (welcomed[r]) continue;
      if (auto nonce = kv.get(hello_key(spec, g, r), g)) {
        kv.put(welcome_key(spec, g, r), g, *nonce);
        welcomed[r] = true;
        --missing;
      }
    }
    if (missing == 0) break;
    if (Clock::now() > deadline) {
      std::string who;
      int listed = 0;
      for (int r = 1; r < size; ++r)
        if (!welcomed[r] && listed++ < 8) who += (who.empty() ? "" : ", ") + std::to_string(r);
      if (missing > 8) who += ", ...";
      // This generation is over: its Gloo directory goes (JOB/gen stays: a late
      // rank learns from it that the only generation there is stale).
      if (spec.kind == RendezvousSpec::Kind::file) {
        std::error_code ec;
        std::filesystem::remove_all(gloo_dir(spec, g), ec);
      }
      throw UserError("rank 0: " + std::to_string(missing) + " of " + std::to_string(size - 1) +
                          " other rank(s) did not join job '" + spec.job + "' at " + spec.url + " within " +
                          seconds_text(base.timeout) + " (missing: " + who + ")" + kv.foreign_note(),
                      "start every node with the same --rendezvous and job id, and WORLD_SIZE=" +
                          std::to_string(size) + " ranks in all (with train_parallel's launchers: the same "
                          "--nnodes and --max-restarts on every node); raise --timeout if nodes start far apart");
    }
    std::this_thread::sleep_for(kPause);
  }
  return g;
}

// A generation as rank 0 writes it (random_hex: 16 hex digits), so that a
// value nobody signed (a job without a secret) cannot name a path.
bool well_formed(const std::string& g) {
  if (g.size() != 16) return false;
  for (char c : g)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// What every other rank does: follow the newest generation, say hello into
// it with a nonce only this rank knows, and wait to be welcomed with it.
std::string follow(const RendezvousSpec& spec, const GlooOptions& base, SealedKv& kv, Clock::time_point deadline) {
  const std::string me = "rank " + std::to_string(base.rank);
  const std::string nonce = sys::random_hex();
  std::string current;
  for (;;) {
    if (auto seen = kv.get(gen_key(spec), ""); seen && well_formed(*seen) && *seen != current) {
      if (!current.empty()) kv.remove(hello_key(spec, current, base.rank));  // a stale generation's
      current = *seen;
      kv.put(hello_key(spec, current, base.rank), current, nonce);
    }
    if (!current.empty()) {
      auto w = kv.get(welcome_key(spec, current, base.rank), current);
      if (w && *w == nonce) return current;
    }
    if (Clock::now() > deadline)
      throw UserError(me + ": rank 0 of job '" + spec.job + "' did not answer at " + spec.url + " within " +
                          seconds_text(base.timeout) +
                          (current.empty() ? " (no rank 0 has registered there)"
                                           : " (the only generation there, " + current +
                                                 ", is left over from an earlier run or its rank 0 is gone)") +
                          kv.foreign_note(),
                      "start rank 0 (node rank 0) with the same --rendezvous and job id; raise --timeout if "
                      "nodes start far apart");
    std::this_thread::sleep_for(kPause);
  }
}

}  // namespace

void load_credentials(RendezvousSpec& spec, const std::string& secret_file, const std::string& password_file) {
  spec.secret = job_secret(secret_file);
  if (spec.kind == RendezvousSpec::Kind::redis) spec.redis = redis_credentials(password_file);
}

std::string require_job_secret(const RendezvousSpec& spec) {
  if (!spec.secret.empty()) return "";
  if (spec.kind == RendezvousSpec::Kind::redis)
    throw UserError("a job that meets at a Redis server (" + spec.url + ") needs a job secret",
                    "give every node the same secret in a file only you can read, --secret-file PATH (make one: "
                    "head -c 32 /dev/urandom | base64 > PATH; chmod 600 PATH), or in DDP_JOB_SECRET; never on "
                    "the command line (docs/security.md)");
  return "warning: no job secret (--secret-file PATH or DDP_JOB_SECRET): anyone who can write into " + spec.dir +
         " can steer this job's ranks (docs/security.md)";
}

GlooOptions join_rendezvous(const RendezvousSpec& spec, const GlooOptions& base, std::string& generation) {
  const auto deadline = Clock::now() + base.timeout;
  SealedKv kv(spec, "rank " + std::to_string(base.rank));
  const std::string g = base.rank == 0 ? lead(spec, base, kv, deadline) : follow(spec, base, kv, deadline);
  generation = g;
  GlooOptions o = base;
  o.secret = spec.secret;
  o.job = spec.job;
  o.generation = g;
  if (spec.kind == RendezvousSpec::Kind::redis) {
    o.redis_host = spec.host;
    o.redis_port = spec.port;
    o.redis = spec.redis;
    o.rendezvous_dir.clear();
    o.prefix = spec.job + "/" + g;
  } else {
    o.redis_host.clear();
    o.rendezvous_dir = gloo_dir(spec, g);
    o.prefix = g;
  }
  return o;
}

void clear_generation(const RendezvousSpec& spec, const std::string& generation, int world_size) {
  if (generation.empty()) return;
  try {
    if (spec.kind == RendezvousSpec::Kind::redis) {
      RedisKv kv(spec.host, spec.port, spec.redis);
      kv.remove_matching(spec.job + "/" + generation + "/*");
    } else {
      FileKv kv(spec.dir);
      for (int r = 1; r < world_size; ++r) {
        ::unlink(kv.path(hello_key(spec, generation, r)).c_str());
        ::unlink(kv.path(welcome_key(spec, generation, r)).c_str());
      }
      std::error_code ec;
      std::filesystem::remove_all(gloo_dir(spec, generation), ec);
    }
  } catch (...) {
    // Best effort: leftovers of a finished generation harm no later run.
  }
}

}  // namespace ddp::dist
