// The DistributedDataParallel gradient synchroniser: averages one flat
// gradient buffer over all ranks, overlapping the all-reduce with backward.
//
// The buffer is cut into buckets by dist::bucket_layout (dist/bucket_layout.h:
// from the END, whole layers at a time). Backward calls
// ready() for each range of gradients as soon as it is final; every bucket
// whose elements are all final goes to a communication thread at once, which
// all-reduces it (sum) while backward goes on. finish() waits for the rest;
// the buffer then holds the SUM over ranks, the same bits on every rank.
// The average is that sum times average_scale() (1.0f / world_size): the
// optimizer applies it as it reads the gradients (optim::Sgd's grad_scale),
// which saves the communication thread a pass over the whole buffer on the
// core that backward is using.
//
// Thread rule: between the first ready() of a step and finish(), only the
// communication thread (finish() itself with Overlap::none) calls into the
// communicator.
//
// With a world of one there is no thread, and finish() returns at once
// without touching the buffer. In steady state a step allocates nothing
// (tests/dist_alloc_test.cpp counts).
//
// Overlap::none does without the thread: finish() all-reduces every bucket
// on the calling thread, after backward. Overlap only pays where the
// communication thread has a core that nothing else needs; where every core
// computes (one single-threaded rank per core), the thread's all-reduce
// takes its CPU from backward anyway, and adds its own costs: wake-ups,
// preempting backward several times a step, spinning while the first rank
// to arrive waits for the other, and evicting backward's working set
// (docs/performance.md, "Overlap or not", has the measurements).
//
// Compression::bf16 halves the bytes on the wire: each bucket is rounded to
// bfloat16 (nearest, ties to even), all-reduced as 16-bit values with the
// additions done in float (Communicator::allreduce_sum_bf16), widened back
// to float. Every rank still ends with the same bits; the
// average is exact to about 3 significant digits (bf16's 8-bit mantissa)
// instead of float's. The bf16 copy of the buffer is allocated once, here.
//
// Compression::powersgd runs PowerSGD (dist/powersgd.h) on each bucket in
// place of its all-reduce, from step PowerSgdOptions::start_step on (plain
// float all-reduce before): the buffer then holds the low-rank
// approximation of the sum for the compressed matrices, still the same bits
// on every rank, and each rank keeps its residual for the next step.
//
// Every step it also notes when each bucket's all-reduce was entered and
// waited for (last_step_buckets(): the trainer compares the ranks' entries
// to split the wait, train/wait_split.h), and with set_trace() it records
// the waits and all-reduces as trace events (common/trace.h).
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/trace.h"
#include "dist/bucket_layout.h"
#include "dist/communicator.h"
#include "dist/options.h"
#include "dist/powersgd.h"

namespace ddp::dist {

// "none", "bf16" or "powersgd"; anything else throws ddp::UserError.
Compression parse_compression(const std::string& name);
const char* compression_name(Compression c);  // to_string(c)

// train_parallel's --overlap: "thread", "none", or "auto", which is none for
// MPI when the ranks on this machine, `busy_threads` compute threads in
// all, use exactly its `cores` (every core computes, none is shared), and
// thread otherwise: with spare cores the thread costs nothing; with shared
// cores (oversubscribed) a rank that waits must sleep, not spin; Gloo's
// own event-loop thread moves the bytes either way. Anything else throws
// ddp::UserError. `backend` is Communicator::backend().
Overlap choose_overlap(OverlapMode mode, const std::string& backend, int busy_threads, int cores);
Overlap choose_overlap(const std::string& flag, const std::string& backend, int busy_threads, int cores);
const char* overlap_name(Overlap o);  // to_string(o)

// When one bucket's all-reduce ran and was waited for in one step, in
// nanoseconds of CLOCK_MONOTONIC (0: did not happen, as in a world of one).
// Comparing the ranks' entry times tells how long a rank waited for a later
// one (train/wait_split.h).
struct BucketTiming {
  int64_t entry_ns = 0;       // the communicator's all-reduce call began (after any bf16 rounding)
  int64_t exit_ns = 0;        // ... and returned
  int64_t wait_begin_ns = 0;  // finish() began waiting for this bucket on the training thread
  int64_t wait_end_ns = 0;    // ... and the bucket was summed
};

class GradSync {
 public:
  // grads: the flat gradient buffer [count] floats, which must outlive this.
  // The buckets are dist::bucket_layout(count, bucket_bytes, segments).
  // powersgd: used with Compression::powersgd only (its matrices must not
  // cross a bucket boundary: give the segments).
  GradSync(Communicator& comm, float* grads, size_t count, size_t bucket_bytes,
           const std::vector<size_t>& segments = {}, Compression compression = Compression::none,
           Overlap overlap = Overlap::thread, const PowerSgdOptions& powersgd = {});
  ~GradSync();  // joins the communication thread (after its current all-reduce)
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // grads[offset, offset+n) are final. Within one step, ranges arrive in
  // decreasing offset order, do not overlap, and together cover the whole
  // buffer exactly once (checked: a violation throws std::logic_error).
  void ready(size_t offset, size_t n);
  // Waits for every bucket (the buffer then holds the sum over ranks).
  // Returns the seconds spent waiting here: the communication NOT hidden
  // behind backward (all of it with Overlap::none). Rethrows a
  // communication error (ddp::UserError) as-is.
  double finish() {
    return finish([](size_t, size_t) {});
  }
  // The same, calling on_bucket(begin, end) on this thread for each bucket
  // as soon as it is summed (bucket 0, the last slice, first), so that work
  // on the finished buckets (the optimizer's step) overlaps the all-reduce
  // of the rest: the last buckets hold the first layers, which backward
  // reaches last. The seconds spent in on_bucket are not counted as waiting.
  template <typename OnBucket>
  double finish(OnBucket&& on_bucket) {
    begin_finish();
    double waited = 0;
    for (size_t b = 0; b < begin_.size(); ++b) {
      waited += wait_for_bucket(b);
      on_bucket(begin_[b], end_[b]);
    }
    end_finish();
    return waited;
  }

  // 1.0f / world_size: the buffer times this is the average over ranks.
  float average_scale() const { return scale_; }
  size_t num_buckets() const { return begin_.size(); }
  Compression compression() const { return compression_; }
  Overlap overlap() const { return threaded_ ? Overlap::thread : Overlap::none; }  // none with a world of one
  // Bucket i as [first element, one past the last).
  std::pair<size_t, size_t> bucket(size_t i) const { return {begin_.at(i), end_.at(i)}; }
  // The PowerSGD state (Compression::powersgd with a world of more than
  // one; else null). Touch it between steps only.
  PowerSgd* powersgd() { return powersgd_.get(); }
  // Seconds spent on the buckets of the last finished step, by the
  // communication thread (or by finish() with Overlap::none): all-reduce
  // calls and bf16 conversions (0 with a world of one).
  double last_step_comm_seconds() const { return last_comm_s_; }
  // CPU seconds used on those buckets: on a machine whose cores all
  // compute, the communication thread's CPU is taken from computation,
  // except while the training thread waits in finish().
  double last_step_comm_cpu_seconds() const { return last_comm_cpu_s_; }
  // The kernel id of the communication thread (0 without one), to give it
  // priority (dist/comm_priority.h).
  int thread_id() const { return thread_id_; }
  // Each bucket's timing in the last finished step, [bucket].
  std::span<const BucketTiming> last_step_buckets() const { return timing_; }

  // Records the waits (compute thread) and the all-reduces and bf16
  // conversions (on the thread that runs them) into `trace`; null (the
  // default) records nothing. Call between steps.
  void set_trace(trace::Recorder* trace) { trace_ = trace; }

 private:
  void comm_loop();
  // All-reduces bucket b in place (through bf16 with compression) on
  // `thread` (for the trace); throws what the communicator throws.
  void reduce_bucket(size_t b, trace::Thread thread);
  void start_step();
  void begin_finish();
  // Seconds spent waiting until bucket b is summed; if it (or an earlier
  // bucket) failed, waits for the thread to pass every bucket, then
  // rethrows the error.
  double wait_for_bucket(size_t b);
  void end_finish();
  // Records the training thread's wait for bucket b, [from, to).
  void end_wait(size_t b, std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to);

  Communicator& comm_;
  float* grads_;
  size_t count_;
  std::vector<size_t> begin_, end_;  // bucket bounds, bucket 0 = last slice
  float scale_;
  bool threaded_;
  Compression compression_;
  std::vector<uint16_t> half_;  // bf16 copy of the buffer (Compression::bf16, world > 1)
  std::unique_ptr<PowerSgd> powersgd_;  // Compression::powersgd, world > 1
  bool compress_step_ = false;          // this step runs powersgd_ (set by start_step, before any hand-off)
  // [bucket]: entry_ns / exit_ns written by whichever thread all-reduces the
  // bucket (before it reports the bucket done, under mu_), the waits by the
  // training thread.
  std::vector<BucketTiming> timing_;
  trace::Recorder* trace_ = nullptr;

  // Training thread only.
  bool in_step_ = false;
  size_t lo_ = 0;           // [lo_, count_) is final in this step
  size_t next_bucket_ = 0;  // buckets [0, next_bucket_) handed off
  double last_comm_s_ = 0;
  double last_comm_cpu_s_ = 0;

  // Shared with the communication thread, under mu_.
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  size_t handed_ = 0;  // buckets handed to the thread this step
  size_t done_ = 0;    // buckets it has finished (or skipped after an error)
  bool stop_ = false;
  double comm_s_ = 0;
  double comm_cpu_s_ = 0;
  std::exception_ptr error_;
  size_t failed_ = 0;  // the bucket whose all-reduce threw error_
  int thread_id_ = 0;
  std::thread thread_;
};

}  // namespace ddp::dist
