#include "dist/redis_auth.h"

#include <gloo/rendezvous/redis_store.h>

#include <vector>

#include "common/error.h"

namespace ddp::dist {

redisReply* redis_command_argv(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
}

namespace {

const std::string kPasswordWays = std::string(kRedisPasswordVar) + " (and " + kRedisUserVar +
                                  " for an ACL user) or --redis-password-file PATH, the same on every node; never "
                                  "on the command line";

// The first sentence of an error reply (Redis explains at length).
std::string first_sentence(std::string why) {
  if (auto dot = why.find(". "); dot != std::string::npos) why.resize(dot + 1);
  return why;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Runs one command; returns "" on success, else the error reply (or the
// connection's error).
std::string run(redisContext* c, const std::vector<std::string>& args) {
  redisReply* r = redis_command_argv(c, args);
  if (!r) return std::string("connection lost: ") + c->errstr;
  std::string err;
  if (r->type == REDIS_REPLY_ERROR) err = std::string(r->str, r->len);
  freeReplyObject(r);
  return err;
}

// Gloo's RedisStore connects in its constructor; this one then logs in on
// the same connection (RedisStore::redis_ is protected for subclasses).
class LoggedInRedisStore final : public gloo::rendezvous::RedisStore {
 public:
  LoggedInRedisStore(const std::string& host, int port, const RedisCredentials& credentials)
      : RedisStore(host, port) {
    redis_login(redis_, credentials, "Redis " + host + ":" + std::to_string(port));
  }
};

}  // namespace

std::string redis_error_hint(const std::string& reply, const std::string& command) {
  if (starts_with(reply, "NOAUTH") || starts_with(reply, "WRONGPASS"))
    return "give the server's password: " + kPasswordWays;
  if (starts_with(reply, "NOPERM"))
    return "allow the ACL user the rendezvous's commands and keys, e.g. ACL SETUSER NAME on >PASSWORD "
           "resetkeys ~JOB/* -@all +get +set +setnx +exists +del +scan +ping (docs/security.md)";
  if (starts_with(reply, "DENIED"))
    return "Redis accepts other machines only with a password or with protected mode off: start it with "
           "--requirepass (docs/security.md) and --bind ADDR (its private network address)";
  if (starts_with(reply, "READONLY")) return "use the primary Redis server, not a read-only replica";
  return "use a Redis server the ranks may write to (" + command + " was refused)";
}

void redis_login(redisContext* c, const RedisCredentials& cr, const std::string& where) {
  if (!cr.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!cr.user.empty()) auth.push_back(cr.user);
    auth.push_back(cr.password);
    const std::string err = run(c, auth);
    const std::string who = cr.user.empty() ? "the default user" : "user '" + cr.user + "'";
    if (starts_with(err, "WRONGPASS"))
      throw UserError("the rendezvous server " + where + " refused the password of " + who +
                          " (WRONGPASS: wrong password, no such user, or the user is disabled)",
                      "give the right password: " + kPasswordWays);
    if (err.find("without any password configured") != std::string::npos)
      throw UserError("a Redis password was given but the rendezvous server " + where + " has none set",
                      "start redis-server with --requirepass (or an ACL user), or give no password; an open "
                      "Redis server lets anyone read and write the job's keys (docs/security.md)");
    if (!err.empty())
      throw UserError("the rendezvous server " + where + " refused AUTH: " + first_sentence(err),
                      redis_error_hint(err, "AUTH"));
  }
  const std::string err = run(c, {"PING"});
  if (starts_with(err, "NOAUTH"))
    throw UserError("the rendezvous server " + where + " requires a password and none was given",
                    "give it: " + kPasswordWays);
  if (!err.empty())
    throw UserError("the rendezvous server " + where + " refused PING: " + first_sentence(err),
                    redis_error_hint(err, "PING"));
}

std::unique_ptr<gloo::rendezvous::Store> make_redis_store(const std::string& host, int port,
                                                          const RedisCredentials& credentials) {
  return std::make_unique<LoggedInRedisStore>(host, port, credentials);
}

}  // namespace ddp::dist
