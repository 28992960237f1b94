// Logging in to the Redis server of a rendezvous (AUTH), and Gloo's Redis
// store with a login. How to run Redis safely: docs/security.md.
#pragma once
#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include <gloo/rendezvous/store.h>

#include "dist/job_secret.h"

namespace ddp::dist {

// On a fresh connection: AUTH [user] password when a password is given,
// then PING, so that every way of being turned away shows up here, at once,
// as one UserError naming the server (`where`, "Redis HOST:PORT") and the
// fix: a server that wants a password and got none (NOAUTH), a wrong
// password or user (WRONGPASS), a password for a server that has none, a
// user not allowed to run commands (NOPERM).
// Sends one command whose arguments may hold any bytes (redisCommandArgv);
// returns hiredis's reply (the caller frees it), or nullptr when the
// connection failed (c->errstr says why).
redisReply* redis_command_argv(redisContext* c, const std::vector<std::string>& args);

void redis_login(redisContext* c, const RedisCredentials& credentials, const std::string& where);

// The hint for an error reply of the Redis server to `command`.
std::string redis_error_hint(const std::string& reply, const std::string& command);

// Gloo's RedisStore (SETNX / GET / EXISTS), logged in with redis_login.
// Throws UserError when the login fails, and whatever Gloo throws when the
// server cannot be reached.
std::unique_ptr<gloo::rendezvous::Store> make_redis_store(const std::string& host, int port,
                                                          const RedisCredentials& credentials);

}  // namespace ddp::dist
