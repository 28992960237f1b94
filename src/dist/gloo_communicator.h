// The Gloo implementation of Communicator: TCP transport, a file-system
// rendezvous store (a directory every rank can see), a full mesh of
// connections, and Gloo's generic collectives (gloo::allreduce,
// gloo::broadcast, gloo::barrier) only.
//
// Every Gloo failure (a peer died, a timeout, a rendezvous that never
// completes) becomes a ddp::UserError naming this rank, the operation and the
// likely cause. After such an error the connection is dead: every later call
// on the same communicator throws at once.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "dist/communicator.h"
#include "dist/job_secret.h"

namespace ddp::dist {

struct GlooOptions {
  int rank = 0;
  int size = 1;
  std::string rendezvous_dir;  // a directory every rank can read and write
  // Across machines without a shared file system: a Redis server as the
  // store instead of rendezvous_dir (used when redis_host is not empty).
  std::string redis_host;
  int redis_port = 6379;
  RedisCredentials redis;      // the Redis server's login (dist/redis_auth.h)
  std::string prefix;          // job id: keys of this job in the store
  // The job secret: every value this rank writes into the store is tagged
  // with it and every value it reads must verify (dist/store_tag.h). Empty:
  // untagged values (refused with a Redis store: anyone who reaches the
  // server could otherwise plant an address).
  std::string secret;
  std::string job;                // job id in the tags (empty: prefix)
  std::string generation = "0";   // rendezvous generation in the tags ("0": a local job has one)
  std::string host = "127.0.0.1";  // address this rank listens on
  // How long any one operation (rendezvous included) may wait for peers.
  std::chrono::milliseconds timeout{60000};
  // What sets `timeout`, for the hints of timeout messages: the variable
  // gloo_options_from_env reads, or the caller's flag ("--timeout").
  std::string timeout_setting = "DDP_GLOO_TIMEOUT_S";
  // All-reduce algorithm of Gloo's generic allreduce: "ring" or "bcube".
  // Both give exact sums at every world size 1..8 (tests/dist_gloo_test.cpp).
  // The default is bcube: it needs 2 log2(p) exchange rounds where ring
  // needs 2(p-1), and every round costs context switches when ranks share
  // cores (docs/performance.md, "Gloo's algorithm", has the measurements).
  std::string algorithm = "bcube";
};

// Joins the job: blocks until all `size` ranks have rendezvoused (or the
// timeout passes). Ignores SIGPIPE for the whole process (a dead peer must
// produce an error, not kill this process), and makes an exception that
// escapes one of Gloo's threads (its TCP loop checks what arrives with
// exceptions nobody catches: a stranger's bytes on a rank's port) end the
// process with one message and exit status 1 instead of an abort and a core
// dump. Throws ddp::UserError.
std::unique_ptr<Communicator> make_gloo_communicator(const GlooOptions& options);

// Options from the environment a launcher sets (launch_local, or torchrun-like
// tools): RANK, WORLD_SIZE, DDP_RENDEZVOUS_DIR, DDP_JOB_ID (required), and
// optionally DDP_GLOO_HOST, DDP_GLOO_TIMEOUT_S (seconds, may be fractional),
// DDP_GLOO_ALGORITHM ("ring" or "bcube"), DDP_JOB_SECRET, DDP_REDIS_HOST and
// DDP_REDIS_PORT (with DDP_REDIS_HOST set, DDP_RENDEZVOUS_DIR is not needed;
// the login from DDP_REDIS_USER / DDP_REDIS_PASSWORD). Throws
// ddp::UserError when a required variable is missing or any is invalid.
GlooOptions gloo_options_from_env();

}  // namespace ddp::dist
