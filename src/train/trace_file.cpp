#include "train/trace_file.h"

#include <algorithm>
#include <map>

#include "common/error.h"
#include "nn/cnn.h"
#include "sys/atomic_file.h"
#include "train/epoch_stats.h"

namespace ddp::train {

using nlohmann::json;

namespace {

constexpr int kComputeTid = 1, kCommTid = 2, kStepsTid = 3;
constexpr size_t kEventWidth = 7;  // int64s per event in the gather

int pid_of(int rank) { return rank + 1; }

int tid_of(const trace::Event& e) {
  if (e.kind == trace::Kind::step) return kStepsTid;
  return e.thread == trace::Thread::comm ? kCommTid : kComputeTid;
}

const char* category(trace::Kind k) {
  switch (k) {
    case trace::Kind::step: return "step";
    case trace::Kind::data: return "data";
    case trace::Kind::forward: return "forward";
    case trace::Kind::backward: return "backward";
    case trace::Kind::wait: return "wait";
    case trace::Kind::optimizer: return "optimizer";
    case trace::Kind::allreduce: return "allreduce";
    case trace::Kind::to_bf16:
    case trace::Kind::from_bf16: return "bf16";
    case trace::Kind::evaluate: return "evaluate";
    case trace::Kind::checkpoint: return "checkpoint";
  }
  return "other";
}

std::string event_name(const trace::Event& e) {
  const std::string bucket = " bucket " + std::to_string(e.arg[0]);
  switch (e.kind) {
    case trace::Kind::step: return "step " + std::to_string(e.step);
    case trace::Kind::forward: return std::string("forward ") + nn::layer_name(static_cast<int>(e.arg[0]));
    case trace::Kind::backward: return std::string("backward ") + nn::layer_name(static_cast<int>(e.arg[0]));
    case trace::Kind::wait: return "wait" + bucket;
    case trace::Kind::optimizer: return "optimizer" + bucket;
    case trace::Kind::allreduce: return "all-reduce" + bucket;
    case trace::Kind::to_bf16: return "to bf16" + bucket;
    case trace::Kind::from_bf16: return "from bf16" + bucket;
    default: return category(e.kind);
  }
}

double micros(int64_t ns) { return static_cast<double>(ns) / 1000.0; }

json complete(const std::string& name, const std::string& cat, int rank, int tid, int64_t start, int64_t end,
              int64_t origin, json args) {
  return {{"name", name}, {"cat", cat}, {"ph", "X"}, {"pid", pid_of(rank)}, {"tid", tid},
          {"ts", micros(start - origin)}, {"dur", micros(end - start)}, {"args", std::move(args)}};
}

json metadata(const char* what, int rank, int tid, json args) {
  json m = {{"name", what}, {"ph", "M"}, {"pid", pid_of(rank)}, {"args", std::move(args)}};
  if (tid > 0) m["tid"] = tid;
  return m;
}

json args_of(const trace::Event& e, const TraceContext& c) {
  json a = {{"step", e.step}};
  switch (e.kind) {
    case trace::Kind::step:
      if (c.steps_per_epoch > 0) {
        a["epoch"] = e.step / c.steps_per_epoch + 1;
        a["step_in_epoch"] = e.step % c.steps_per_epoch;
      }
      break;
    case trace::Kind::forward:
    case trace::Kind::backward: a["layer"] = nn::layer_name(static_cast<int>(e.arg[0])); break;
    case trace::Kind::allreduce:
      a["bytes"] = e.arg[1];
      a["algorithm"] = c.allreduce_algorithm;
      a["backend"] = c.backend;
      [[fallthrough]];
    case trace::Kind::wait:
    case trace::Kind::optimizer:
    case trace::Kind::to_bf16:
    case trace::Kind::from_bf16: a["bucket"] = e.arg[0]; break;
    default: break;
  }
  return a;
}

// Each all-reduce's two parts: waiting until the last rank joined, then the
// rest (moving the bytes); and each rank's "bytes sent" counter.
void add_allreduce_parts(std::span<const RankEvent> events, int world, int64_t origin, json& out) {
  std::map<std::pair<int64_t, int64_t>, std::pair<int64_t, int>> latest;  // (step, bucket) -> (entry, rank)
  for (const auto& [rank, e] : events) {
    if (e.kind != trace::Kind::allreduce) continue;
    auto [it, fresh] = latest.try_emplace({e.step, e.arg[0]}, e.start_ns, rank);
    if (!fresh && e.start_ns > it->second.first) it->second = {e.start_ns, rank};
  }
  // The bytes each rank sends in a bandwidth-optimal all-reduce (ring, or
  // bcube's recursive halving): 2 (N-1)/N of the buffer.
  const double sent_share = 2.0 * (world - 1) / world;
  std::vector<std::vector<const trace::Event*>> mine(static_cast<size_t>(world));
  for (const auto& [rank, e] : events) {
    if (e.kind != trace::Kind::allreduce) continue;
    mine[static_cast<size_t>(rank)].push_back(&e);
    const int64_t end = e.start_ns + e.dur_ns;
    const auto [last, last_rank] = latest.at({e.step, e.arg[0]});
    const int64_t joined = std::clamp(last, e.start_ns, end);
    if (joined > e.start_ns)
      out.push_back(complete("wait for rank " + std::to_string(last_rank), "later_rank", rank, tid_of(e), e.start_ns,
                             joined, origin, {{"step", e.step}, {"bucket", e.arg[0]}, {"rank", last_rank}}));
    if (end > joined)
      out.push_back(complete("transfer", "transfer", rank, tid_of(e), joined, end, origin,
                             {{"step", e.step}, {"bucket", e.arg[0]}}));
  }
  for (int r = 0; r < world; ++r) {
    auto& list = mine[static_cast<size_t>(r)];
    std::sort(list.begin(), list.end(), [](auto* a, auto* b) { return a->start_ns + a->dur_ns < b->start_ns + b->dur_ns; });
    double sent = 0;
    for (const trace::Event* e : list) {
      sent += sent_share * static_cast<double>(e->arg[1]);
      out.push_back({{"name", "bytes sent"}, {"ph", "C"}, {"pid", pid_of(r)},
                     {"ts", micros(e->start_ns + e->dur_ns - origin)}, {"args", {{"bytes", sent}}}});
    }
  }
}

json other_data(const TraceContext& c, int64_t origin, uint64_t dropped) {
  json clocks = json::array();
  for (size_t r = 0; r < c.clocks.size(); ++r) {
    const auto& k = c.clocks[r];
    clocks.push_back({{"rank", r}, {"same_clock_as_rank_0", k.same_clock}, {"offset_ns", k.offset_ns},
                      {"uncertainty_ns", k.uncertainty_ns}, {"measured_offset_ns", k.measured_ns},
                      {"round_trip_ns", k.round_trip_ns}});
  }
  json buckets = json::array();
  for (const auto& [lo, hi] : c.buckets) buckets.push_back({lo, hi});
  return {{"world_size", c.clocks.size()},
          {"backend", c.backend},
          {"allreduce_algorithm", c.allreduce_algorithm},
          {"overlap", c.overlap},
          {"grad_compression", c.grad_compression},
          {"buckets", buckets},
          {"steps_per_epoch", c.steps_per_epoch},
          {"trace_steps", {c.steps.first, c.steps.end}},
          {"clock", {{"source", "CLOCK_MONOTONIC"},
                     {"origin_ns", origin},
                     {"ranks", clocks}}},
          {"dropped_events", dropped}};
}

}  // namespace

std::vector<RankEvent> gather_trace(dist::Communicator& comm, const trace::Recorder& recorder, int64_t offset_ns,
                                    uint64_t& dropped) {
  std::vector<int64_t> row;
  for (int t = 0; t < trace::kThreads; ++t)
    for (const trace::Event& e : recorder.events(static_cast<trace::Thread>(t)))
      row.insert(row.end(), {static_cast<int64_t>(e.thread), static_cast<int64_t>(e.kind), e.step,
                             e.start_ns - offset_ns, e.dur_ns, e.arg[0], e.arg[1]});
  const int64_t header[2] = {static_cast<int64_t>(row.size() / kEventWidth), static_cast<int64_t>(recorder.dropped())};
  const std::vector<int64_t> counts = gather_int64_rows(comm, header, 2);
  size_t most = 0;
  dropped = 0;
  for (int r = 0; r < comm.size(); ++r) {
    most = std::max(most, static_cast<size_t>(counts[2 * static_cast<size_t>(r)]));
    dropped += static_cast<uint64_t>(counts[2 * static_cast<size_t>(r) + 1]);
  }
  const size_t width = most * kEventWidth;
  row.resize(width, 0);
  const std::vector<int64_t> all = gather_int64_rows(comm, row.data(), width);
  std::vector<RankEvent> events;
  for (int r = 0; r < comm.size(); ++r) {
    const int64_t* x = all.data() + static_cast<size_t>(r) * width;
    for (int64_t i = 0; i < counts[2 * static_cast<size_t>(r)]; ++i, x += kEventWidth) {
      trace::Event e;
      e.thread = static_cast<trace::Thread>(x[0]);
      e.kind = static_cast<trace::Kind>(x[1]);
      e.step = x[2];
      e.start_ns = x[3];
      e.dur_ns = x[4];
      e.arg = {x[5], x[6]};
      events.push_back({r, e});
    }
  }
  return events;
}

json trace_json(std::span<const RankEvent> events, const TraceContext& context, uint64_t dropped) {
  const int world = std::max<int>(1, static_cast<int>(context.clocks.size()));
  int64_t origin = events.empty() ? 0 : events.front().event.start_ns;
  for (const auto& re : events) origin = std::min(origin, re.event.start_ns);
  json out = json::array();
  for (int r = 0; r < world; ++r) {
    out.push_back(metadata("process_name", r, 0, {{"name", "rank " + std::to_string(r)}}));
    out.push_back(metadata("process_sort_index", r, 0, {{"sort_index", r}}));
    const std::pair<int, const char*> lanes[] = {
        {kComputeTid, "compute"}, {kCommTid, "communication"}, {kStepsTid, "steps"}};
    for (const auto& [tid, name] : lanes) {
      if (tid == kCommTid && context.overlap != "thread") continue;  // no communication thread
      out.push_back(metadata("thread_name", r, tid, {{"name", name}}));
      out.push_back(metadata("thread_sort_index", r, tid, {{"sort_index", tid}}));
    }
  }
  for (const auto& [rank, e] : events)
    out.push_back(complete(event_name(e), category(e.kind), rank, tid_of(e), e.start_ns, e.start_ns + e.dur_ns, origin,
                           args_of(e, context)));
  if (world > 1) add_allreduce_parts(events, world, origin, out);
  return {{"traceEvents", out}, {"displayTimeUnit", "ms"}, {"otherData", other_data(context, origin, dropped)}};
}

std::string write_trace(dist::Communicator& comm, trace::Recorder& recorder, const TraceContext& context,
                        const std::string& path) {
  recorder.close();
  uint64_t dropped = 0;
  const int64_t offset = context.clocks.empty() ? 0 : context.clocks.at(static_cast<size_t>(comm.rank())).offset_ns;
  const std::vector<RankEvent> events = gather_trace(comm, recorder, offset, dropped);
  if (comm.rank() != 0) return "";
  try {
    sys::write_file_atomic(path, trace_json(events, context, dropped).dump() + "\n");
  } catch (const UserError& e) {
    return std::string(e.what()) + (e.hint().empty() ? "" : " (fix: " + e.hint() + ")");
  }
  return "";
}

RunTrace::RunTrace(const TrainConfig& cfg, TraceWindow window) : path_(cfg.trace) {
  context_.steps = window;
  if (!cfg.trace.empty() && window.end > window.first)
    recorder_ = std::make_unique<trace::Recorder>(window.first, window.end);
}

bool RunTrace::end_step(dist::Communicator& comm, int64_t step) {
  if (!recorder_ || !recorder_->window_complete(step)) return false;
  error_ = write_trace(comm, *recorder_, context_, path_);
  return true;
}

bool RunTrace::flush(dist::Communicator& comm, int64_t end_step) {
  if (!recorder_ || recorder_->closed() || end_step <= recorder_->first_step()) return false;
  context_.steps.end = std::min(context_.steps.end, end_step);
  error_ = write_trace(comm, *recorder_, context_, path_);
  return true;
}

std::string RunTrace::written_message() const {
  if (!error_.empty()) return "warning: the trace was not written, training goes on: " + error_;
  return "trace of steps " + std::to_string(context_.steps.first) + ":" + std::to_string(context_.steps.end) +
         " written to " + path_ + " (open it in ui.perfetto.dev)";
}

}  // namespace ddp::train
