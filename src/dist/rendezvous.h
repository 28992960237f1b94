// Rendezvous across machines for the Gloo backend: where the ranks of a job
// meet (a Redis server, or a directory on a shared file system), which
// address each rank listens on, and which rank a process is.
//
//   redis://HOST[:PORT][/JOB]   a Redis server every rank reaches (port 6379)
//   file:///ABS/DIR             a directory every rank sees (NFS, Lustre, ...)
//
// Stale keys. Gloo's stores refuse to overwrite a key (RedisStore uses SETNX,
// FileStore checks for the file), so keys left by an earlier run with the
// same job id (one that crashed, or is still being cleaned up) would break a
// new run, and a rank reading an old address would connect to a dead one.
// join_rendezvous() therefore runs every attempt in a fresh GENERATION: a
// random 64-bit id chosen by rank 0, the only key that is ever overwritten.
//
//   rank 0:  G = random; (file: mkdir DIR/JOB.G.gloo); put JOB/gen = G;
//            for each rank r: wait for JOB/G/hello/r = n, put JOB/G/welcome/r = n
//   rank r:  n = random; repeat: read JOB/gen; if it changed to G', put
//            JOB/G'/hello/r = n; done when JOB/G'/welcome/r == n
//
// A rank that reads a stale generation (rank 0 of the new run has not
// written its own yet) says hello into it, never gets its own nonce back
// (the old rank 0 is gone; an old welcome carries an old nonce), and moves
// on as soon as rank 0 publishes the new generation. Only rank 0 overwrites
// JOB/gen, and a welcome echoes a nonce only the asking rank knows, so a rank
// joins a generation only when that generation's rank 0 is alive and has
// seen it. Gloo's own keys then live under JOB/G (Redis) or in DIR/JOB.G.gloo
// (file), where nothing stale can exist. After the full mesh is connected
// (and a barrier shows every rank is done reading), rank 0 deletes the
// generation's keys (clear_generation). A different job (another job id)
// never meets this one; two runs started AT ONCE with the same job id are a
// user error (each rank joins one of them; the incomplete one times out).
#pragma once
#include <chrono>
#include <string>

#include "dist/gloo_communicator.h"

namespace ddp::dist {

struct RendezvousSpec {
  enum class Kind { redis, file };
  Kind kind = Kind::file;
  std::string url;     // as given
  std::string dir;     // file: the shared directory
  std::string host;    // redis
  int port = 6379;     // redis
  std::string job;     // job id ("ddp" unless the URL or --job-id names one)
};

// Parses a rendezvous URL (see above). Throws UserError naming what is wrong.
RendezvousSpec parse_rendezvous(const std::string& url);

// Job ids: 1..64 letters, digits, '-', '_' or '.'. Throws UserError.
void check_job_id(const std::string& job);

// The first IPv4 address of a network interface. Throws UserError listing
// the interfaces that have one when `iface` has none.
std::string interface_ipv4(const std::string& iface);

// Throws UserError unless a TCP socket can bind to `host` (a numeric address
// or a name) on this machine: the address Gloo will listen on.
void check_bindable(const std::string& host);

// Meets the other ranks (the generation protocol above) and returns Gloo
// options for the fresh generation (store, prefix, rank, size; host and
// timeout are the caller's, copied from `base`). Waits at most base.timeout.
// `generation` receives G. Throws UserError when the store is unreachable or
// not all ranks arrive in time, naming the missing ranks.
GlooOptions join_rendezvous(const RendezvousSpec& spec, const GlooOptions& base, std::string& generation);

// Rank 0, once every rank has connected: removes the generation's keys (and,
// for a directory, its files). Best effort: never throws.
void clear_generation(const RendezvousSpec& spec, const std::string& generation, int world_size);

}  // namespace ddp::dist
