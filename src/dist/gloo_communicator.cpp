#include "dist/gloo_communicator.h"

#include "dist/comm_priority.h"

#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/common/logging.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>

#include "common/error.h"
#include "dist/bf16.h"
#include "dist/redis_auth.h"
#include "dist/store_tag.h"
#include "sys/env.h"
#include "sys/launch_env.h"

namespace ddp::dist {
namespace {

std::string seconds_text(std::chrono::milliseconds ms) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

// Element-wise sum for Gloo (the output may alias either input).
template <typename T>
void sum_into(void* c_, const void* a_, const void* b_, size_t n) {
  T* c = static_cast<T*>(c_);
  const T* a = static_cast<const T*>(a_);
  const T* b = static_cast<const T*>(b_);
  for (size_t i = 0; i < n; i++) c[i] = a[i] + b[i];
}

// Element-wise bfloat16 sum, accumulated in float (the output may alias either input).
void sum_bf16(void* c, const void* a, const void* b, size_t n) {
  bf16_sum(static_cast<uint16_t*>(c), static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b), n);
}

gloo::AllreduceOptions::Algorithm parse_algorithm(const std::string& name) {
  if (name == "ring") return gloo::AllreduceOptions::Algorithm::RING;
  if (name == "bcube") return gloo::AllreduceOptions::Algorithm::BCUBE;
  throw UserError("unknown all-reduce algorithm '" + name + "'",
                  "use \"ring\" or \"bcube\" (DDP_GLOO_ALGORITHM)");
}

// The first line of a Gloo exception's text, for the hint.
std::string gloo_detail(const std::exception& e) {
  std::string s = e.what();
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(const GlooOptions& o, std::shared_ptr<gloo::transport::Device> device,
                   std::shared_ptr<gloo::rendezvous::Context> context)
      : options_(o),
        algorithm_(parse_algorithm(o.algorithm)),
        device_(std::move(device)),
        context_(std::move(context)) {}

  int rank() const override { return options_.rank; }
  int size() const override { return options_.size; }
  std::string backend() const override { return "gloo"; }

  void allreduce_sum(float* data, size_t count) override { allreduce(data, count, &sum_into<float>); }
  void allreduce_sum(double* data, size_t count) override { allreduce(data, count, &sum_into<double>); }
  // 2-byte elements on the wire; each reduction step adds in float and
  // rounds once. Both of Gloo's algorithms reduce every chunk on exactly one
  // rank (reduce-scatter) and then copy it to all (all-gather), so every
  // rank receives the same bits.
  void allreduce_sum_bf16(uint16_t* data, size_t count) override { allreduce(data, count, &sum_bf16); }

  void broadcast(float* data, size_t count, int root) override {
    if (root < 0 || root >= size())
      throw UserError("broadcast from rank " + std::to_string(root) + " in a world of " +
                      std::to_string(size()));
    if (size() == 1 || count == 0) return;
    guarded("broadcast", [&] {
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(data, count);  // in place: the root sends from it
      opts.setRoot(root);
      opts.setTag(next_tag());
      gloo::broadcast(opts);
    });
  }

  void barrier() override {
    if (size() == 1) return;
    guarded("barrier", [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTag(next_tag());
      gloo::barrier(opts);
    });
  }

 private:
  template <typename T>
  void allreduce(T* data, size_t count, void (*reduce)(void*, const void*, const void*, size_t)) {
    if (size() == 1 || count == 0) return;
    guarded("all-reduce", [&] {
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(data, count);
      opts.setReduceFunction(reduce);
      opts.setAlgorithm(algorithm_);
      opts.setTag(next_tag());
      gloo::allreduce(opts);
    });
  }

  // Every rank runs the same sequence of collectives, so a running counter
  // gives matching, distinct tags (as PyTorch's ProcessGroupGloo does).
  uint32_t next_tag() { return tag_++; }

  template <typename F>
  void guarded(const char* what, F&& f) {
    if (broken_)
      throw PeerError("rank " + std::to_string(rank()) + ": cannot run " + what +
                          ": the connection to the other ranks failed earlier",
                      "see the first error above; a job cannot continue after losing a peer");
    const CommCallPriority as_a_communication_thread;
    try {
      f();
    } catch (const UserError&) {
      broken_ = true;
      throw;
    } catch (const std::exception& e) {  // gloo::IoException, gloo::EnforceNotMet, ...
      broken_ = true;
      throw PeerError("rank " + std::to_string(rank()) + ": lost contact with a peer during " +
                          what + " (a peer process died or timed out after " +
                          seconds_text(options_.timeout) + ")" + silent_peer(e),
                      "the first error is usually on another rank: read its output; if the "
                      "ranks are only slow, raise the timeout (" + options_.timeout_setting + "). Gloo said: " +
                          gloo_detail(e));
    }
  }

  // After Gloo's timeout (its text says "Timed out" or "timeout"): who sent
  // nothing. Gloo does not say which peer; in a world of two it can only be
  // the other rank. In larger worlds the ranks waiting behind the silent one
  // time out too, so the launcher names it (dist/launcher.h).
  std::string silent_peer(const std::exception& e) const {
    const std::string text = e.what();
    if (text.find("Timed out") == std::string::npos && text.find("timeout") == std::string::npos) return "";
    if (size() == 2)
      return ": rank " + std::to_string(1 - rank()) + " sent nothing for " + seconds_text(options_.timeout) +
             " (it went silent: stopped, hung, or far slower than this rank)";
    return ": a peer sent nothing for " + seconds_text(options_.timeout) +
           " (the launcher's report names a stopped rank)";
  }

  GlooOptions options_;
  gloo::AllreduceOptions::Algorithm algorithm_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::rendezvous::Context> context_;
  uint32_t tag_ = 0;
  bool broken_ = false;
};

// Applies our timeout to every read of the store. (Gloo's connectFullMesh
// reads some keys with Store::get, which waits with a fixed 30 s default:
// a rank that never arrives would otherwise hold the others for 30 s
// whatever the configured timeout.)
class TimedStore final : public gloo::rendezvous::Store {
 public:
  TimedStore(gloo::rendezvous::Store& inner, std::chrono::milliseconds timeout)
      : inner_(inner), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override {
    inner_.set(key, data);
  }
  std::vector<char> get(const std::string& key) override {
    inner_.wait({key}, timeout_);
    return inner_.get(key);
  }
  void wait(const std::vector<std::string>& keys) override { inner_.wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    inner_.wait(keys, timeout);
  }

 private:
  gloo::rendezvous::Store& inner_;
  std::chrono::milliseconds timeout_;
};

// Gloo's TCP loop (a thread of its own) checks every message that arrives
// with GLOO_ENFORCE, which throws, and nothing catches there: bytes that no
// rank of the job sent (the transport is not authenticated: anyone who
// reaches a rank's port may connect before its peer does) would otherwise
// abort the process with a core dump. One message and exit status 1
// instead; the launcher then stops the other ranks.
std::atomic<int> g_rank_for_terminate{-1};

[[noreturn]] void on_uncaught_in_thread() {
  std::string what = "an unknown exception";
  if (auto e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
    }
  }
  if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
  const bool from_transport = what.find("gloo/transport") != std::string::npos;
  std::fprintf(stderr, "rank %d: error: %s: %s\n  fix: %s\n", g_rank_for_terminate.load(),
               from_transport ? "Gloo's network thread received a message no rank of this job sends"
                              : "an exception escaped a thread",
               what.c_str(),
               from_transport ? "someone not in this job connected to this rank's port (Gloo's traffic is neither "
                                "authenticated nor encrypted): run jobs across machines only on a private network "
                                "(docs/security.md)"
                              : "this is a bug; please report it with the command you ran");
  std::fflush(stderr);
  ::_exit(1);
}

void install_terminate_handler(int rank) {
  g_rank_for_terminate = rank;
  static std::once_flag once;
  std::call_once(once, [] { std::set_terminate(on_uncaught_in_thread); });
}

// A peer's port refused us although the peer was alive: each of Gloo's
// pairs accepts one connection, whoever makes it.
std::string refused_note(const std::exception& e) {
  if (std::string(e.what()).find("Connection refused") == std::string::npos) return "";
  return "; if that rank was alive, another process may have connected to its port first (Gloo's traffic is not "
         "authenticated: run across machines only on a private network, docs/security.md)";
}

// A variable our launcher sets (sys/launch_env.h): without it, this process
// was not started as a rank.
UserError not_set(const char* name) {
  return UserError(std::string("environment variable ") + name + " is not set",
                   "start the parallel workers with the launcher (train_parallel), which sets "
                   "RANK, WORLD_SIZE, DDP_RENDEZVOUS_DIR and DDP_JOB_ID");
}

std::string required(const char* name) {
  std::string v = sys::env_string(name);
  if (v.empty()) throw not_set(name);
  return v;
}

}  // namespace

GlooOptions gloo_options_from_env() {
  GlooOptions o;
  const sys::EnvPlace place = sys::place_from_env();  // checks the values and RANK < WORLD_SIZE
  if (place.rank < 0) throw not_set(sys::kRankVar);
  if (place.world_size < 0) throw not_set(sys::kWorldSizeVar);
  o.rank = place.rank;
  o.size = place.world_size;
  o.redis_host = sys::env_string("DDP_REDIS_HOST");
  o.rendezvous_dir = o.redis_host.empty() ? required(sys::kRendezvousDirVar) : sys::env_string(sys::kRendezvousDirVar);
  o.redis_port = sys::env_int("DDP_REDIS_PORT", o.redis_port, "the Redis server's port (default 6379)");
  if (o.redis_port < 1 || o.redis_port > 65535)
    throw UserError("DDP_REDIS_PORT=" + std::to_string(o.redis_port) + " is not a TCP port",
                    "set DDP_REDIS_PORT to the Redis server's port (default 6379)");
  o.prefix = required(sys::kJobIdVar);
  o.secret = job_secret("");
  if (!o.redis_host.empty()) o.redis = redis_credentials("");
  o.host = sys::env_string("DDP_GLOO_HOST", o.host);
  const std::string t = sys::env_string("DDP_GLOO_TIMEOUT_S");
  if (!t.empty()) {
    errno = 0;
    char* end = nullptr;
    double s = std::strtod(t.c_str(), &end);
    if (errno != 0 || *end != '\0' || !(s > 0) || s > 86400.0 * 365)
      throw UserError("DDP_GLOO_TIMEOUT_S='" + t + "' is not a positive number of seconds",
                      "set DDP_GLOO_TIMEOUT_S to e.g. 60");
    o.timeout = std::chrono::milliseconds(static_cast<long long>(s * 1000.0 + 0.5));
    if (o.timeout.count() < 1) o.timeout = std::chrono::milliseconds(1);
  }
  o.algorithm = sys::env_string("DDP_GLOO_ALGORITHM", o.algorithm);
  parse_algorithm(o.algorithm);  // validate early
  return o;
}

std::unique_ptr<Communicator> make_gloo_communicator(const GlooOptions& o) {
  if (o.size < 1 || o.rank < 0 || o.rank >= o.size)
    throw UserError("invalid rank " + std::to_string(o.rank) + " for a world of " +
                        std::to_string(o.size),
                    "rank must be in [0, world size)");
  if (o.timeout.count() <= 0)
    throw UserError("the communication timeout must be positive", "pass a timeout of e.g. 60 s");
  parse_algorithm(o.algorithm);
  if (o.prefix.empty())
    throw UserError("no job id for the rendezvous", "set DDP_JOB_ID (the launcher does this)");
  struct stat st {};
  if (o.redis_host.empty() && o.rendezvous_dir.empty())
    throw UserError("rank " + std::to_string(o.rank) + ": no rendezvous store",
                    "set DDP_RENDEZVOUS_DIR to a directory all ranks share, or DDP_REDIS_HOST "
                    "to a Redis server all ranks reach");
  if (!o.redis_host.empty() && o.secret.empty())
    throw UserError("rank " + std::to_string(o.rank) + ": a job that meets at a Redis server needs a job secret",
                    "set DDP_JOB_SECRET (the same on every node) or give train_parallel --secret-file PATH "
                    "(docs/security.md)");
  if (o.redis_host.empty() &&
      (::stat(o.rendezvous_dir.c_str(), &st) != 0 ||
       !S_ISDIR(st.st_mode) || ::access(o.rendezvous_dir.c_str(), R_OK | W_OK | X_OK) != 0))
    throw UserError("rank " + std::to_string(o.rank) + ": rendezvous directory '" +
                        o.rendezvous_dir + "' is not a writable directory",
                    "every rank needs the same existing, writable directory "
                    "(DDP_RENDEZVOUS_DIR); the launcher creates one under $TMPDIR or /tmp");

  // A dead peer shows up as EPIPE on a write; without this the default
  // SIGPIPE action would kill this process before Gloo can report it.
  std::signal(SIGPIPE, SIG_IGN);
  install_terminate_handler(o.rank);

  const std::string me = "rank " + std::to_string(o.rank);
  try {
    // 1. Device: the TCP transport, listening on `host`.
    gloo::transport::tcp::attr attr;
    attr.hostname = o.host;
    auto device = gloo::transport::tcp::CreateDevice(attr);

    // 2. Store: where ranks publish their addresses. A directory on a
    //    file system all ranks see (or a Redis server); the prefix keeps
    //    jobs apart.
    //    Every value is tagged with the job secret (under the prefix, so
    //    that the tag covers the full key).
    std::unique_ptr<gloo::rendezvous::Store> base_store;
    if (o.redis_host.empty())
      base_store = std::make_unique<gloo::rendezvous::FileStore>(o.rendezvous_dir);
    else
      base_store = make_redis_store(o.redis_host, o.redis_port, o.redis);
    TaggedStore tagged(*base_store, {o.secret, o.job.empty() ? o.prefix : o.job, o.generation}, me);
    gloo::rendezvous::PrefixStore prefix_store(o.prefix, tagged);
    TimedStore store(prefix_store, o.timeout);

    // 3. Rendezvous context: this rank's place in the world. The timeout
    //    must be set before connecting; it governs every later operation.
    auto context = std::make_shared<gloo::rendezvous::Context>(o.rank, o.size);
    context->setTimeout(o.timeout);

    // 4. Connect a full mesh: one TCP pair per peer.
    context->connectFullMesh(store, device);

    // 5. Algorithms: Gloo's generic collectives run on this context.
    return std::make_unique<GlooCommunicator>(o, std::move(device), std::move(context));
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {
    const std::string where = o.redis_host.empty()
                                  ? "in " + o.rendezvous_dir
                                  : "at Redis " + o.redis_host + ":" + std::to_string(o.redis_port);
    throw PeerError(me + ": could not connect to the other " + std::to_string(o.size - 1) +
                        " rank(s) (rendezvous " + where + ", job " + o.prefix +
                        ", timeout " + seconds_text(o.timeout) + ")",
                    "all ranks must start with the same store (DDP_RENDEZVOUS_DIR or "
                    "DDP_REDIS_HOST) and DDP_JOB_ID and "
                    "be able to reach " + o.host + "; a rank that died or never started makes "
                    "the others fail here" + refused_note(e) + ". Gloo said: " + gloo_detail(e));
  }
}

}  // namespace ddp::dist
