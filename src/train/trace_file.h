// The file --trace writes: every rank's recorded events (common/trace.h),
// merged by rank 0 into one Chrome Trace Event Format document
// (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU),
// which ui.perfetto.dev and chrome://tracing open. docs/tracing.md says how
// to read it; docs/file-formats.md lists its fields.
//
// Lanes: one process per rank ("pid" = rank + 1: Perfetto treats pid 0 as
// the kernel's idle process; the process is named "rank r"), and in it one
// thread per recording thread: "compute" (tid 1), "communication" (tid 2),
// and "steps" (tid 3: one event per training step). Times are
// microseconds on rank 0's CLOCK_MONOTONIC (other ranks shifted by their
// dist/clock_sync.h offset), from the first traced event.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/trace.h"
#include "dist/clock_sync.h"
#include "dist/communicator.h"
#include "train/trace_window.h"

namespace ddp::train {

// What the trace's metadata ("otherData") says about the run.
struct TraceContext {
  std::string backend;              // Communicator::backend()
  std::string allreduce_algorithm;  // what ran (RunResult::allreduce_algorithm)
  std::string overlap;              // "thread" / "none"
  std::string grad_compression;     // "none" / "bf16"
  std::vector<std::pair<size_t, size_t>> buckets;  // [first element, one past the last), bucket 0 first
  int64_t steps_per_epoch = 0;
  TraceWindow steps;
  std::vector<dist::ClockOffset> clocks;  // [rank]
};

// One recorded event of one rank, its times on rank 0's clock.
struct RankEvent {
  int rank = 0;
  trace::Event event;
};

// Every rank's events, on every rank: a collective (two all-reduces, sized
// by the largest rank's count). offset_ns: this rank's clock minus rank 0's.
// dropped: set to the events all ranks lost to full buffers.
std::vector<RankEvent> gather_trace(dist::Communicator& comm, const trace::Recorder& recorder, int64_t offset_ns,
                                    uint64_t& dropped);

// The trace document of `events` (all ranks, rank 0's clock).
nlohmann::json trace_json(std::span<const RankEvent> events, const TraceContext& context, uint64_t dropped);

// Gathers (a collective: every rank calls it) and, on rank 0, writes `path`
// atomically. Closes the recorder. Returns "" when written (or on ranks
// other than 0), else why the file could not be written, with the fix: the
// trace is a diagnostic, so a full disk must not end the training. Throws
// when a peer fails.
std::string write_trace(dist::Communicator& comm, trace::Recorder& recorder, const TraceContext& context,
                        const std::string& path);

// --trace for one run on one rank: the recorder, armed over the window's
// steps, and the file, written once the window's last step is done.
class RunTrace {
 public:
  // Records nothing (a null recorder) without cfg.trace or when the window
  // is empty (a run resumed at its end).
  RunTrace(const TrainConfig& cfg, TraceWindow window);
  // What to hand to the instrumented code: null when not tracing.
  trace::Recorder* recorder() const { return recorder_.get(); }
  TraceContext& context() { return context_; }

  void begin_step(int64_t step) {
    if (recorder_) recorder_->begin_step(step);
  }
  // After global step `step` (every rank): when it was the window's last,
  // gathers and writes the trace (a collective). True when it wrote.
  bool end_step(dist::Communicator& comm, int64_t step);
  // Writes what the window recorded so far, if it began and the trace is
  // not written yet: for a run stopped inside the window after training
  // the global steps before end_step (every rank calls it with the same
  // end_step). True when it wrote.
  bool flush(dist::Communicator& comm, int64_t end_step);
  // "trace of steps A:B written to PATH" for the log, or, when the file
  // could not be written, a warning saying why and that training went on.
  std::string written_message() const;

 private:
  std::string path_;
  std::string error_;  // why the file was not written ("" : written)
  TraceContext context_;
  std::unique_ptr<trace::Recorder> recorder_;
};

}  // namespace ddp::train
