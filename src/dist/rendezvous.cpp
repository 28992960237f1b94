#include "dist/rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "common/error.h"
#include "sys/fd.h"
#include "sys/random_id.h"

namespace ddp::dist {
namespace {

using Clock = std::chrono::steady_clock;

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

// A tiny key-value view of the store the protocol runs on. Values are
// short strings; put overwrites atomically; get never blocks.
class Kv {
 public:
  virtual ~Kv() = default;
  virtual void put(const std::string& key, const std::string& value) = 0;
  virtual std::optional<std::string> get(const std::string& key) = 0;
  virtual void remove(const std::string& key) = 0;
};

class RedisKv final : public Kv {
 public:
  RedisKv(const RendezvousSpec& s) : where_("Redis " + s.host + ":" + std::to_string(s.port)) {
    struct timeval tv = {5, 0};
    c_ = redisConnectWithTimeout(s.host.c_str(), s.port, tv);
    if (!c_ || c_->err) {
      const std::string why = c_ ? c_->errstr : "out of memory";
      if (c_) redisFree(c_);
      c_ = nullptr;
      throw UserError("cannot reach the rendezvous server " + where_ + ": " + why,
                      "start redis-server there (reachable from every node: bind to its network address and "
                      "allow the port), or fix the address in --rendezvous");
    }
    redisSetTimeout(c_, tv);
  }
  ~RedisKv() override {
    if (c_) redisFree(c_);
  }
  void put(const std::string& key, const std::string& value) override {
    // Expire after a day: nothing the protocol writes outlives a stuck job for long.
    command({"SET", key, value, "EX", "86400"});
  }
  std::optional<std::string> get(const std::string& key) override {
    redisReply* r = command({"GET", key});
    std::optional<std::string> out;
    if (r->type == REDIS_REPLY_STRING) out = std::string(r->str, r->len);
    freeReplyObject(r);
    return out;
  }
  void remove(const std::string& key) override { freeReplyObject(command({"DEL", key})); }
  // Deletes every key matching the glob pattern (SCAN, then DEL).
  void remove_matching(const std::string& pattern) {
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

 private:
  redisReply* command(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (!r)
      throw UserError("lost the rendezvous server " + where_ + " during " + args[0] + ": " + c_->errstr,
                      "keep redis-server running until every rank has started training");
    if (r->type == REDIS_REPLY_ERROR) {
      std::string why(r->str, r->len);
      freeReplyObject(r);
      if (auto dot = why.find(". "); dot != std::string::npos) why.resize(dot + 1);  // Redis explains at length
      throw UserError("the rendezvous server " + where_ + " refused " + args[0] + ": " + why,
                      why.rfind("DENIED", 0) == 0
                          ? "Redis accepts other machines only with a password or with protected mode off: on a "
                            "private network start it as redis-server --bind ADDR --protected-mode no"
                          : "use a plain Redis server the ranks may write to (no password, not read-only)");
    }
    return r;
  }
  std::string where_;
  redisContext* c_ = nullptr;
};

// One file per key in the shared directory; '/' in keys becomes '.'.
class FileKv final : public Kv {
 public:
  explicit FileKv(std::string dir) : dir_(std::move(dir)) {}
  std::string path(const std::string& key) const {
    std::string name = key;
    for (char& c : name)
      if (c == '/') c = '.';
    return dir_ + "/" + name;
  }
  void put(const std::string& key, const std::string& value) override {
    const std::string final_path = path(key);
    const std::string tmp = dir_ + "/.tmp." + sys::random_hex();
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    bool ok = fd >= 0 && sys::write_all(fd, value.data(), value.size());
    if (fd >= 0) ok = (::close(fd) == 0) && ok;
    if (!ok || ::rename(tmp.c_str(), final_path.c_str()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      throw UserError("cannot write " + final_path + ": " + std::strerror(err),
                      "the rendezvous directory must be writable by every rank");
    }
  }
  void remove(const std::string& key) override { ::unlink(path(key).c_str()); }
  std::optional<std::string> get(const std::string& key) override {
    int fd = ::open(path(key).c_str(), O_RDONLY);
    if (fd < 0) return std::nullopt;
    std::string s;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return s;
  }

 private:
  std::string dir_;
};

std::unique_ptr<Kv> open_kv(const RendezvousSpec& s) {
  if (s.kind == RendezvousSpec::Kind::redis) return std::make_unique<RedisKv>(s);
  return std::make_unique<FileKv>(s.dir);
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

GlooOptions join_rendezvous(const RendezvousSpec& spec, const GlooOptions& base, std::string& generation) {
  const int rank = base.rank, size = base.size;
  const std::string me = "rank " + std::to_string(rank);
  const auto deadline = Clock::now() + base.timeout;
  const auto pause = std::chrono::milliseconds(20);
  auto kv = open_kv(spec);
  std::string g;
  if (rank == 0) {
    g = sys::random_hex();
    if (spec.kind == RendezvousSpec::Kind::file) {
      const std::string d = gloo_dir(spec, g);
      if (::mkdir(d.c_str(), 0755) != 0)
        throw UserError("rank 0: cannot create " + d + ": " + std::strerror(errno),
                        "the rendezvous directory must be writable by every rank");
    }
    kv->put(gen_key(spec), g);
    std::vector<bool> welcomed(size, false);
    int missing = size - 1;
    while (missing > 0) {
      for (int r = 1; r < size; ++r) {
        if (welcomed[r]) continue;
        if (auto nonce = kv->get(hello_key(spec, g, r))) {
          kv->put(welcome_key(spec, g, r), *nonce);
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
        throw UserError("rank 0: " + std::to_string(missing) + " of " + std::to_string(size - 1) +
                            " other rank(s) did not join job '" + spec.job + "' at " + spec.url + " within " +
                            seconds_text(base.timeout) + " (missing: " + who + ")",
                        "start every node with the same --rendezvous and job id, and WORLD_SIZE=" +
                            std::to_string(size) + " ranks in all; raise --timeout if nodes start far apart");
      }
      std::this_thread::sleep_for(pause);
    }
  } else {
    const std::string nonce = sys::random_hex();
    std::string current;
    for (;;) {
      if (auto seen = kv->get(gen_key(spec)); seen && !seen->empty() && *seen != current) {
        if (!current.empty()) kv->remove(hello_key(spec, current, rank));  // a stale generation's
        current = *seen;
        kv->put(hello_key(spec, current, rank), nonce);
      }
      if (!current.empty()) {
        auto w = kv->get(welcome_key(spec, current, rank));
        if (w && *w == nonce) break;
      }
      if (Clock::now() > deadline)
        throw UserError(me + ": rank 0 of job '" + spec.job + "' did not answer at " + spec.url + " within " +
                            seconds_text(base.timeout) +
                            (current.empty() ? " (no rank 0 has registered there)"
                                             : " (the only generation there, " + current +
                                                   ", is left over from an earlier run or its rank 0 is gone)"),
                        "start rank 0 (node rank 0) with the same --rendezvous and job id; raise --timeout if "
                        "nodes start far apart");
      std::this_thread::sleep_for(pause);
    }
    g = current;
  }
  generation = g;
  GlooOptions o = base;
  if (spec.kind == RendezvousSpec::Kind::redis) {
    o.redis_host = spec.host;
    o.redis_port = spec.port;
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
      RedisKv kv(spec);
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
