#include "dist/grad_sync.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <string>
#include <tuple>

#include "common/error.h"
#include "dist/bf16.h"

namespace ddp::dist {

using Clock = std::chrono::steady_clock;

namespace {
// CPU time the calling thread has used, in seconds.
double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}
}  // namespace

Compression parse_compression(const std::string& name) {
  if (const auto c = enum_from_string<Compression>(name)) return *c;
  throw UserError("unknown gradient compression '" + name + "'",
                  "use --grad-compression " + enum_choices<Compression>());
}

const char* compression_name(Compression c) { return to_string(c); }

Overlap choose_overlap(OverlapMode mode, const std::string& backend, int busy_threads, int cores) {
  switch (mode) {
    case OverlapMode::thread: return Overlap::thread;
    case OverlapMode::none: return Overlap::none;
    case OverlapMode::automatic: break;
  }
  return backend == "mpi" && busy_threads == cores ? Overlap::none : Overlap::thread;
}

Overlap choose_overlap(const std::string& flag, const std::string& backend, int busy_threads, int cores) {
  const auto mode = enum_from_string<OverlapMode>(flag);
  if (!mode) throw UserError("unknown overlap '" + flag + "'", "use --overlap " + enum_choices<OverlapMode>());
  return choose_overlap(*mode, backend, busy_threads, cores);
}

const char* overlap_name(Overlap o) { return to_string(o); }

GradSync::GradSync(Communicator& comm, float* grads, size_t count, size_t bucket_bytes,
                   const std::vector<size_t>& segments, Compression compression, Overlap overlap,
                   const PowerSgdOptions& powersgd)
    : comm_(comm),
      grads_(grads),
      count_(count),
      scale_(1.0f / static_cast<float>(comm.size())),
      threaded_(comm.size() > 1 && overlap == Overlap::thread),
      compression_(compression) {
  DDP_ASSERT(grads != nullptr || count == 0, "GradSync needs a gradient buffer");
  for (const auto& [begin, end] : bucket_layout(count, bucket_bytes, segments)) {
    begin_.push_back(begin);
    end_.push_back(end);
  }
  lo_ = count_;
  timing_.resize(begin_.size());
  if (comm.size() > 1 && compression_ == Compression::bf16) half_.resize(count_);
  if (comm.size() > 1 && compression_ == Compression::powersgd) {
    BucketBounds bounds;
    for (size_t b = 0; b < begin_.size(); ++b) bounds.emplace_back(begin_[b], end_[b]);
    powersgd_ = std::make_unique<PowerSgd>(grads_, count_, bounds, powersgd);
  }
  if (threaded_) {
    thread_ = std::thread([this] { comm_loop(); });
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return thread_id_ != 0; });
  }
}

GradSync::~GradSync() {
  if (!threaded_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_one();
  thread_.join();
}

void GradSync::start_step() {
  in_step_ = true;
  lo_ = count_;
  next_bucket_ = 0;
  compress_step_ = powersgd_ && powersgd_->compressing();  // the thread reads it after a hand-off
  if (threaded_) {
    std::lock_guard<std::mutex> lock(mu_);
    handed_ = 0;
    done_ = 0;
    comm_s_ = 0;
    comm_cpu_s_ = 0;
    error_ = nullptr;
  }
}

void GradSync::ready(size_t offset, size_t n) {
  if (!in_step_) start_step();
  DDP_ASSERT(offset <= count_ && n <= count_ - offset && offset + n == lo_,
             "GradSync::ready(" + std::to_string(offset) + ", " + std::to_string(n) +
                 "): ranges must arrive in decreasing order, each ending where the previous "
                 "one began (expected one ending at " + std::to_string(lo_) + " of " +
                 std::to_string(count_) + ")");
  lo_ = offset;
  const size_t before = next_bucket_;
  while (next_bucket_ < begin_.size() && begin_[next_bucket_] >= lo_) ++next_bucket_;
  if (!threaded_ || next_bucket_ == before) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    handed_ = next_bucket_;
  }
  work_cv_.notify_one();
}

void GradSync::begin_finish() {
  if (!in_step_) start_step();  // an empty buffer needs no ready()
  DDP_ASSERT(lo_ == 0, "GradSync::finish(): only [" + std::to_string(lo_) + ", " +
                           std::to_string(count_) + ") of the gradients were marked ready");
  in_step_ = false;
  last_comm_s_ = 0;
  last_comm_cpu_s_ = 0;
}

double GradSync::wait_for_bucket(size_t b) {
  if (!threaded_) {
    if (comm_.size() == 1) return 0.0;
    const double cpu0 = thread_cpu_seconds();
    const auto t0 = Clock::now();
    reduce_bucket(b, trace::Thread::compute);
    const auto t1 = Clock::now();
    const double s = std::chrono::duration<double>(t1 - t0).count();
    last_comm_s_ += s;
    last_comm_cpu_s_ += thread_cpu_seconds() - cpu0;
    end_wait(b, t0, t1);
    return s;
  }
  const auto t0 = Clock::now();
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return done_ > b; });
    if (error_ && failed_ <= b) {
      done_cv_.wait(lock, [&] { return done_ == begin_.size(); });  // no bucket left in flight
      error = error_;
      last_comm_s_ = comm_s_;
      last_comm_cpu_s_ = comm_cpu_s_;
    }
  }
  if (error) std::rethrow_exception(error);
  const auto t1 = Clock::now();
  end_wait(b, t0, t1);
  return std::chrono::duration<double>(t1 - t0).count();
}

void GradSync::end_wait(size_t b, Clock::time_point from, Clock::time_point to) {
  BucketTiming& t = timing_[b];
  t.wait_begin_ns = trace::ns(from);
  t.wait_end_ns = trace::ns(to);
  if (trace_) trace_->record(trace::Thread::compute, trace::Kind::wait, t.wait_begin_ns, t.wait_end_ns, static_cast<int64_t>(b));
}

void GradSync::end_finish() {
  if (powersgd_) powersgd_->end_step();
  if (!threaded_) return;
  std::lock_guard<std::mutex> lock(mu_);
  last_comm_s_ = comm_s_;
  last_comm_cpu_s_ = comm_cpu_s_;
}

void GradSync::comm_loop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    thread_id_ = static_cast<int>(::syscall(SYS_gettid));
  }
  done_cv_.notify_one();
  for (;;) {
    size_t b;
    bool skip;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || done_ < handed_; });
      if (stop_) return;
      b = done_;
      skip = error_ != nullptr;  // the connection is dead: do not try again
    }
    double seconds = 0, cpu = 0;
    std::exception_ptr error;
    if (!skip) {
      const double cpu0 = thread_cpu_seconds();
      const auto t0 = Clock::now();
      try {
        reduce_bucket(b, trace::Thread::comm);
      } catch (...) {
        error = std::current_exception();
      }
      seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      cpu = thread_cpu_seconds() - cpu0;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      comm_s_ += seconds;
      comm_cpu_s_ += cpu;
      if (error && !error_) {
        error_ = error;
        failed_ = b;
      }
      ++done_;
    }
    done_cv_.notify_one();  // finish() may be waiting for this very bucket
  }
}

void GradSync::reduce_bucket(size_t b, trace::Thread thread) {
  float* p = grads_ + begin_[b];
  const size_t len = end_[b] - begin_[b];
  const auto bucket = static_cast<int64_t>(b);
  BucketTiming& t = timing_[b];
  trace::Recorder* const tr = trace_ && trace_->armed() ? trace_ : nullptr;
  if (compress_step_) {
    std::tie(t.entry_ns, t.exit_ns) = powersgd_->reduce_bucket(b, comm_, {tr, thread});
  } else if (compression_ == Compression::bf16) {
    uint16_t* h = half_.data() + begin_[b];
    const int64_t t0 = tr ? trace::now_ns() : 0;
    floats_to_bf16(p, h, len);
    t.entry_ns = trace::now_ns();
    comm_.allreduce_sum_bf16(h, len);
    t.exit_ns = trace::now_ns();
    bf16_to_floats(h, p, len);
    if (tr) {
      tr->record(thread, trace::Kind::to_bf16, t0, t.entry_ns, bucket);
      tr->record(thread, trace::Kind::allreduce, t.entry_ns, t.exit_ns, bucket, static_cast<int64_t>(len * 2));
      tr->record(thread, trace::Kind::from_bf16, t.exit_ns, trace::now_ns(), bucket);
    }
  } else {
    t.entry_ns = trace::now_ns();
    comm_.allreduce_sum(p, len);
    t.exit_ns = trace::now_ns();
    if (tr) tr->record(thread, trace::Kind::allreduce, t.entry_ns, t.exit_ns, bucket, static_cast<int64_t>(len * 4));
  }
}

}  // namespace ddp::dist
