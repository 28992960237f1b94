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
//
// Who may write. Every value of the protocol (and of Gloo's keys under
// JOB/G) carries an HMAC tag keyed by the job secret (dist/store_tag.h;
// JOB/gen's tag covers generation "", the others G). A value whose tag does
// not verify counts as absent: the rank says so once on its standard error,
// keeps waiting for the real one, and names it in its timeout message. So a
// stranger can stop a job (write a key first, or keep overwriting JOB/gen)
// but cannot make a rank join a generation or a peer that is not the job's.
// A Redis server is logged in to (dist/redis_auth.h). docs/security.md.
#pragma once
#include <chrono>
#include <string>

#include "dist/gloo_communicator.h"
#include "dist/job_secret.h"

namespace ddp::dist {

struct RendezvousSpec {
  enum class Kind { redis, file };
  Kind kind = Kind::file;
  std::string url;     // as given
  std::string dir;     // file: the shared directory
  std::string host;    // redis
  int port = 6379;     // redis
  std::string job;     // job id ("ddp" unless the URL or --job-id names one)
  std::string secret;  // the job secret ("": none; load_credentials)
  RedisCredentials redis;  // redis: the login (load_credentials)
};

// Parses a rendezvous URL (see above). Throws UserError naming what is wrong.
RendezvousSpec parse_rendezvous(const std::string& url);

// Fills spec.secret (dist::job_secret: --secret-file, else DDP_JOB_SECRET)
// and, for redis://, spec.redis (dist::redis_credentials). Throws UserError
// for a secret or password file that cannot be used.
void load_credentials(RendezvousSpec& spec, const std::string& secret_file, const std::string& password_file);

// For ranks started by more than one launcher: with redis:// a job secret is
// required (throws UserError saying how to give one); with file:// its
// absence is allowed and the warning line to print is returned. "" when
// spec.secret is set.
std::string require_job_secret(const RendezvousSpec& spec);

// Job ids: 1..64 letters, digits, '-', '_' or '.'. Throws UserError.
void check_job_id(const std::string& job);

// The first IPv4 address of a network interface. Throws UserError listing
// the interfaces that have one when `iface` has none.
std::string interface_ipv4(const std::string& iface);

// Throws UserError unless a TCP socket can bind to `host` (a numeric address
// or a name) on this machine: the address Gloo will listen on.
void check_bindable(const std::string& host);

// Meets the other ranks (the generation protocol above) and returns Gloo
// options for the fresh generation (store, prefix, rank, size, and the
// spec's secret and Redis login; host and timeout are the caller's, copied
// from `base`). Waits at most base.timeout.
// `generation` receives G. Throws UserError when the store is unreachable or
// not all ranks arrive in time, naming the missing ranks.
GlooOptions join_rendezvous(const RendezvousSpec& spec, const GlooOptions& base, std::string& generation);

// Rank 0, once every rank has connected: removes the generation's keys (and,
// for a directory, its files). Best effort: never throws.
void clear_generation(const RendezvousSpec& spec, const std::string& generation, int world_size);

}  // namespace ddp::dist
