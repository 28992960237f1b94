// The recording side of --trace: a timeline of what each thread of a rank
// did during a window of training steps, kept in memory until the window
// closes (train/trace_file.h then merges the ranks' events and writes a
// Chrome Trace Event Format file).
//
// Why preallocated, fixed-size buffers: the traced steps must be the steps
// being studied, so recording may not allocate, lock or do I/O (the tests
// that count allocations run with tracing on). Each thread writes its own
// buffer; an event is a plain struct (what, when, two integer arguments),
// and its name is made only when the file is written. A full buffer drops
// further events and counts them.
//
// Why one clock: CLOCK_MONOTONIC (std::chrono::steady_clock in libstdc++)
// is shared by every process on one machine, so the ranks' events line up
// as recorded; across machines the writer shifts each rank's events by the
// offset dist/clock_sync.h estimated.
//
// With tracing off the instrumented code holds a null Recorder* and only
// tests it. With tracing on, outside the window, record() is one relaxed
// atomic load and a branch.
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace ddp::trace {

// The threads of a rank that record, each into its own buffer.
enum class Thread : uint8_t {
  compute = 0,  // the training thread: batch, forward, backward, waits, optimizer, evaluation, checkpoints
  comm = 1,     // GradSync's communication thread: the buckets' all-reduces
};
inline constexpr int kThreads = 2;

// What an event is; the writer names it (arg meanings below).
enum class Kind : uint16_t {
  step,        // one whole training step (train_step)
  data,        // filling the batch
  forward,     // arg0: the layer (nn::Layer)
  backward,    // arg0: the layer (nn::Layer), including the hand-off of its gradients
  wait,        // the training thread waiting for bucket arg0's all-reduce (GradSync::finish)
  optimizer,   // the optimizer step over bucket arg0
  allreduce,   // the communicator's all-reduce of bucket arg0 (arg1: its bytes as sent, per rank buffer)
  to_bf16,     // rounding bucket arg0 to bfloat16 before its all-reduce
  from_bf16,   // widening bucket arg0 back to float
  evaluate,    // the evaluation on the test set after an epoch
  checkpoint,  // writing a checkpoint (rank 0)
};
inline constexpr int kNumKinds = 11;

// One event: [start_ns, start_ns + dur_ns) of CLOCK_MONOTONIC.
struct Event {
  int64_t start_ns = 0;
  int64_t dur_ns = 0;
  std::array<int64_t, 2> arg{};
  int64_t step = 0;  // the global training step during which it was recorded
  Kind kind = Kind::step;
  Thread thread = Thread::compute;
};

// Nanoseconds of CLOCK_MONOTONIC.
inline int64_t ns(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline int64_t now_ns() { return ns(std::chrono::steady_clock::now()); }

// The events of global steps [first, end), recorded by the training thread
// and the communication thread.
//
// Thread rule: begin_step(), close() and events() on the training thread;
// record(t, ...) only on the thread t names. The communication thread's
// records of a step happen between that step's GradSync hand-offs and
// GradSync::finish, whose mutex orders them before the training thread
// reads them.
class Recorder {
 public:
  // Buffers for (end - first) * events_per_step + extra events per thread,
  // allocated here. Needs first < end.
  Recorder(int64_t first, int64_t end, size_t events_per_step = 64, size_t extra = 64);
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  int64_t first_step() const { return first_; }
  int64_t end_step() const { return end_; }

  // The training thread starts global step `step`: recording is on from the
  // first step of the window until close().
  void begin_step(int64_t step) {
    step_.store(step, std::memory_order_relaxed);
    if (step >= first_ && step < end_ && !closed_) armed_.store(true, std::memory_order_relaxed);
  }
  // True after the window's last step: time to write.
  bool window_complete(int64_t step) const { return !closed_ && step + 1 == end_; }
  // Recording stops for good.
  void close() {
    armed_.store(false, std::memory_order_relaxed);
    closed_ = true;
  }
  bool closed() const { return closed_; }
  // Recording now (inside the window)? Cheap: call sites use it to skip
  // reading the clock.
  bool armed() const { return armed_.load(std::memory_order_relaxed); }

  // Adds [start_ns, end_ns) to thread t's buffer if recording is on.
  // Never allocates, locks or throws.
  void record(Thread t, Kind k, int64_t start_ns, int64_t end_ns, int64_t arg0 = 0, int64_t arg1 = 0) noexcept {
    if (!armed()) return;
    Buffer& b = buffers_[static_cast<size_t>(t)];
    if (b.size == b.capacity) {
      ++b.dropped;
      return;
    }
    b.events[b.size++] = {start_ns, end_ns - start_ns, {arg0, arg1}, step_.load(std::memory_order_relaxed), k, t};
  }

  std::span<const Event> events(Thread t) const {
    const Buffer& b = buffers_[static_cast<size_t>(t)];
    return {b.events.get(), b.size};
  }
  // Events lost to a full buffer, all threads.
  uint64_t dropped() const;
  size_t capacity_per_thread() const { return buffers_[0].capacity; }

 private:
  struct alignas(64) Buffer {  // one cache line apart: two writer threads
    std::unique_ptr<Event[]> events;
    size_t capacity = 0, size = 0;
    uint64_t dropped = 0;
  };
  const int64_t first_, end_;
  std::atomic<bool> armed_{false};
  std::atomic<int64_t> step_{-1};
  bool closed_ = false;
  std::array<Buffer, kThreads> buffers_;
};

}  // namespace ddp::trace
