#include "launch/node_rounds.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "dist/sealed_kv.h"
#include "sys/random_id.h"

namespace ddp::launch {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
const auto kPause = std::chrono::milliseconds(20);  // between polls of the store

std::string seconds_text(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

// A round id as node 0 writes it (random_hex: 16 hex digits).
bool well_formed(const std::string& q) {
  return q.size() == 16 && std::all_of(q.begin(), q.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

std::string node_list(const std::vector<int>& nodes) {
  std::string s;
  for (size_t i = 0; i < nodes.size() && i < 8; ++i) s += (i ? ", " : "") + std::to_string(nodes[i]);
  return nodes.size() > 8 ? s + ", ..." : s;
}

// A value another launcher wrote, parsed; nullopt when it is not JSON of
// the expected shape (it is sealed, so only a launcher of this job with a
// bug, or a job without a secret, could write such a thing).
std::optional<json> parsed(const std::optional<std::string>& v) {
  if (!v) return std::nullopt;
  json j = json::parse(*v, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

}  // namespace

int Round::position(int node) const {
  const auto it = std::find(nodes.begin(), nodes.end(), node);
  return it == nodes.end() ? -1 : static_cast<int>(it - nodes.begin());
}

NodeRounds::NodeRounds(dist::RendezvousSpec spec, int node, int nnodes, std::string shape)
    : spec_(std::move(spec)),
      node_(node),
      nnodes_(nnodes),
      shape_(std::move(shape)),
      kv_(std::make_unique<dist::SealedKv>(spec_, "node " + std::to_string(node) + "'s launcher")) {}

NodeRounds::~NodeRounds() = default;

std::string NodeRounds::key(const std::string& round, const std::string& what) const {
  return spec_.job + "/launch/" + round + "/" + what;
}

Round NodeRounds::lead(int number, bool from_snapshot, std::chrono::milliseconds wait, int min_nodes) {
  const std::string previous = current_;
  const std::string q = sys::random_hex();
  opened_.push_back(q);
  current_ = q;
  kv_->put(spec_.job + "/launch", "", q);
  const auto deadline = Clock::now() + wait;
  std::vector<std::string> nonces(static_cast<size_t>(nnodes_));
  reports_.clear();
  Round r;
  r.number = number;
  r.from_snapshot = from_snapshot;
  int present = 1;
  for (;;) {
    for (int n = 1; n < nnodes_; ++n) {
      if (!nonces[static_cast<size_t>(n)].empty()) continue;
      const auto hello = parsed(kv_->get(key(q, "hello/" + std::to_string(n)), q));
      if (!hello || !hello->contains("nonce") || !(*hello)["nonce"].is_string()) continue;
      nonces[static_cast<size_t>(n)] = (*hello)["nonce"];
      reports_[n] = {hello->value("rank", -1), hello->value("cause", ""), hello->value("new_launcher", false)};
      if (const std::string theirs = hello->value("shape", ""); theirs != shape_) {
        const std::string what = "node " + std::to_string(n) + " was started with " + theirs + ", node 0 with " +
                                 shape_ + ": the nodes of a job must agree";
        json refusal = {{"error", what}, {"nonces", nonces}};
        kv_->put(key(q, "plan"), q, refusal.dump());  // the node learns it too: wait (briefly) until it has
        for (int i = 0; i < 100 && !kv_->get(key(q, "ack/" + std::to_string(n)), q); ++i)
          std::this_thread::sleep_for(kPause);
        throw UserError(what, "start every node with the same --nnodes, --nproc-per-node and --max-restarts");
      }
      ++present;
    }
    if (!previous.empty()) {  // a node that ended the last round on purpose stops the job
      r.stop = stop_in(previous);
      if (!r.stop.empty()) return r;
    }
    if (present == nnodes_ || (Clock::now() > deadline && present >= min_nodes)) break;
    if (Clock::now() > deadline) {
      std::vector<int> missing;
      for (int n = 1; n < nnodes_; ++n)
        if (nonces[static_cast<size_t>(n)].empty()) missing.push_back(n);
      throw UserError("node 0: " + std::to_string(missing.size()) + " of " + std::to_string(nnodes_ - 1) +
                          " other node(s) did not join job '" + spec_.job + "' at " + spec_.url + " within " +
                          seconds_text(wait) + " (missing: node " + node_list(missing) + ")" + kv_->foreign_note() +
                          (number > 0 ? ", and the restart needs " + std::to_string(min_nodes) +
                                            " node(s) to continue (--min-nnodes; by default every node)"
                                      : ""),
                      number > 0 ? "start the lost nodes' launchers again with the same command (within "
                                   "--rejoin-timeout), or lower --min-nnodes to continue without them"
                                 : "start every node with the same --rendezvous, job id, --nnodes and "
                                   "--max-restarts (a node without --max-restarts skips the nodes' rounds and "
                                   "waits for its ranks' rendezvous instead); raise --timeout if nodes start far "
                                   "apart");
    }
    std::this_thread::sleep_for(kPause);
  }
  json plan = {{"round", number}, {"from_snapshot", from_snapshot}, {"nodes", json::array()}, {"nonces", nonces}};
  for (int n = 0; n < nnodes_; ++n)
    if (n == 0 || !nonces[static_cast<size_t>(n)].empty()) r.nodes.push_back(n);
  plan["nodes"] = r.nodes;
  members_ = r.nodes;
  kv_->put(key(q, "plan"), q, plan.dump());
  return r;
}

Round NodeRounds::join(std::chrono::milliseconds wait, const NodeFailure& failure) {
  const std::string nonce = sys::random_hex();
  const std::string joined = current_;  // the round this node last took part in: node 0 may end the job there
  const auto deadline = Clock::now() + wait;
  std::string seen;
  for (;;) {
    if (!joined.empty()) {
      if (auto why = kv_->get(key(joined, "end"), joined)) {
        kv_->put(key(joined, "ack/" + std::to_string(node_)), joined, "1");
        Round r;
        r.ended = *why;
        return r;
      }
    }
    if (auto q = kv_->get(spec_.job + "/launch", ""); q && well_formed(*q) && *q != seen && *q != joined) {
      if (!seen.empty()) kv_->remove(key(seen, "hello/" + std::to_string(node_)));  // a stale round's
      seen = *q;
      kv_->put(key(seen, "hello/" + std::to_string(node_)), seen, json{{"nonce", nonce},
                    {"rank", failure.rank},
                    {"cause", failure.cause},
                    {"new_launcher", joined.empty()},
                    {"shape", shape_}}
                   .dump());
    }
    if (!seen.empty()) {
      if (auto plan = parsed(kv_->get(key(seen, "plan"), seen))) {
        const json& nonces = plan->value("nonces", json::array());
        const size_t me = static_cast<size_t>(node_);
        if (nonces.is_array() && me < nonces.size() && nonces[me] == nonce) {
          if (plan->contains("error")) {
            kv_->put(key(seen, "ack/" + std::to_string(node_)), seen, "1");
            throw UserError("node 0 refused this node: " + plan->value("error", std::string()),
                            "start every node with the same --nnodes, --nproc-per-node and --max-restarts");
          }
          Round r;
          r.number = plan->value("round", 0);
          r.from_snapshot = plan->value("from_snapshot", false);
          r.nodes = plan->value("nodes", std::vector<int>{});
          current_ = seen;
          return r;
        }
      }
    }
    if (Clock::now() > deadline)
      throw UserError("node " + std::to_string(node_) + ": node 0 of job '" + spec_.job + "' started no round with " +
                          "this node at " + spec_.url + " within " + seconds_text(wait) +
                          (!joined.empty() ? " (node 0 is gone with its launcher or machine, or it ended the job "
                                             "without this node)"
                           : seen.empty()  ? " (no node 0 has registered there, or node 0 was started without "
                                             "--max-restarts: every node needs the same)"
                                           : " (node 0 is gone, or the job went on or ended without this node: "
                                             "node 0's output says how to continue)") +
                          kv_->foreign_note(),
                      joined.empty() ? "start node 0 with the same --rendezvous, job id and --nnodes; raise --timeout "
                                       "if nodes start far apart"
                                     : "if node 0 was lost, continue from this node's snapshot: --resume "
                                       "CHECKPOINT_DIR/snapshot.safetensors (written with --checkpoint-dir)");
    std::this_thread::sleep_for(kPause);
  }
}

void NodeRounds::stop(const std::string& why, std::chrono::milliseconds wait) {
  if (current_.empty()) return;
  try {
    kv_->put(key(current_, "stop/" + std::to_string(node_)), current_, "node " + std::to_string(node_) + ": " + why);
    const auto deadline = Clock::now() + wait;
    while (Clock::now() < deadline) {
      if (kv_->get(key(current_, "end"), current_)) {
        kv_->put(key(current_, "ack/" + std::to_string(node_)), current_, "1");
        return;
      }
      std::this_thread::sleep_for(kPause);
    }
  } catch (...) {
    // The store is gone: node 0 learns from its own ranks that the job broke.
  }
}

void NodeRounds::report_failure(const NodeFailure& failure) {
  if (current_.empty()) return;
  try {
    kv_->put(key(current_, "failed/" + std::to_string(node_)), current_,
             json{{"rank", failure.rank}, {"cause", failure.cause}}.dump());
  } catch (...) {
  }
}

std::string NodeRounds::abandon_reason() {
  if (current_.empty()) return "";
  try {
    if (leads()) {
      for (int n : members_) {
        if (n == 0) continue;
        if (kv_->get(key(current_, "failed/" + std::to_string(n)), current_))
          return "node " + std::to_string(n) + "'s ranks failed";
        if (kv_->get(key(current_, "stop/" + std::to_string(n)), current_))
          return "node " + std::to_string(n) + " stopped the job";
      }
      return "";
    }
    if (kv_->get(key(current_, "end"), current_)) return "node 0 ended the job";
    if (auto q = kv_->get(spec_.job + "/launch", ""); q && well_formed(*q) && *q != current_)
      return "node 0 started a new round (the job failed elsewhere)";
  } catch (...) {
    // The store is unreachable: the ranks find out about their peers themselves.
  }
  return "";
}

std::string NodeRounds::stop_requested() { return stop_in(current_); }

std::string NodeRounds::stop_in(const std::string& round) {
  if (round.empty()) return "";
  for (int n = 1; n < nnodes_; ++n)
    if (auto why = kv_->get(key(round, "stop/" + std::to_string(n)), round)) return *why;
  return "";
}

void NodeRounds::end(const std::string& why, std::chrono::milliseconds wait) {
  try {
    for (const std::string& q : opened_) kv_->put(key(q, "end"), q, why);
    const auto deadline = Clock::now() + wait;
    for (int n : members_) {
      if (n == 0) continue;
      for (;;) {
        bool acked = false;
        for (const std::string& q : opened_) acked = acked || kv_->get(key(q, "ack/" + std::to_string(n)), q);
        if (acked || Clock::now() > deadline) break;
        std::this_thread::sleep_for(kPause);
      }
    }
  } catch (...) {
  }
  remove_keys();
}

void NodeRounds::finish() { remove_keys(); }

void NodeRounds::remove_keys() {
  try {
    for (const std::string& q : opened_) {
      for (const char* what : {"plan", "end"}) kv_->remove(key(q, what));
      for (int n = 0; n < nnodes_; ++n)
        for (const char* what : {"hello/", "stop/", "ack/", "failed/"}) kv_->remove(key(q, what + std::to_string(n)));
    }
    kv_->remove(spec_.job + "/launch");
    kv_->remove(spec_.job + "/gen");  // the ranks' pointer to their last generation (dist/rendezvous.h)
  } catch (...) {
    // Best effort: what is left is ignored by later jobs (fresh rounds, fresh generations).
  }
}

}  // namespace ddp::launch
