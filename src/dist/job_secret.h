// The secrets of a job, and where they come from. Neither is ever taken
// from the command line: every user of the machine can read a process's
// argv (ps); a file only its owner reads, or the environment (readable only
// by the same user and root, /proc/PID/environ), cannot be read that way.
//
//  - The job secret, which every rank of one job holds: it keys the
//    HMAC-SHA-256 tag on every value a rank writes into the rendezvous store
//    (dist/store_tag.h), so values nobody of the job wrote are refused. The
//    local launcher makes a fresh one per job (new_job_secret) and hands it to
//    its ranks in DDP_JOB_SECRET; ranks started on several machines read the
//    same one from --secret-file PATH or DDP_JOB_SECRET.
//  - The Redis server's credentials (AUTH): DDP_REDIS_PASSWORD, and
//    DDP_REDIS_USER for an ACL user (default: Redis's "default" user), or the
//    password from --redis-password-file PATH.
//
// The threat model: docs/security.md.
#pragma once
#include <string>

namespace ddp::dist {

inline constexpr const char* kJobSecretVar = "DDP_JOB_SECRET";
inline constexpr const char* kRedisPasswordVar = "DDP_REDIS_PASSWORD";
inline constexpr const char* kRedisUserVar = "DDP_REDIS_USER";

// Shortest job secret accepted, in bytes (128 bits if they are random).
inline constexpr size_t kMinSecretBytes = 16;

// The whole of a secret file, less one trailing newline ("\n" or "\r\n").
// Throws UserError when it cannot be read, is empty, or is readable or
// writable by group or others (the hint says chmod 600 PATH). `what` names
// the secret in messages ("the job secret").
std::string read_secret_file(const std::string& path, const std::string& what);

// The job secret: the content of `file` when it is not empty (the
// --secret-file flag), else DDP_JOB_SECRET, else "" (none). Throws
// UserError when it is shorter than kMinSecretBytes.
std::string job_secret(const std::string& file);

// A fresh secret for one job: 32 random bytes as 64 hex digits.
std::string new_job_secret();

struct RedisCredentials {
  std::string user;      // empty: Redis's "default" user (AUTH PASSWORD)
  std::string password;  // empty: no AUTH
};

// DDP_REDIS_USER, and the password from `password_file` when it is not
// empty (the --redis-password-file flag), else DDP_REDIS_PASSWORD. Throws
// UserError for an unreadable file, or a user without a password.
RedisCredentials redis_credentials(const std::string& password_file);

}  // namespace ddp::dist
