#include "train/snapshots.h"

#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>

namespace ddp::train {

SnapshotClock::SnapshotClock(double interval_s)
    : interval_(interval_s), next_(Clock::now() + std::chrono::duration_cast<Clock::duration>(interval_)) {}

bool SnapshotClock::due() const { return interval_.count() > 0 && Clock::now() >= next_; }

void SnapshotClock::written() { next_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(interval_); }

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

ProgressFile::ProgressFile(const std::string& path) {
  if (!path.empty()) fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

ProgressFile::~ProgressFile() {
  if (fd_ >= 0) ::close(fd_);
}

void ProgressFile::started(int64_t global_step) {
  p_.start_step = p_.completed = global_step;
  p_.start_unix = unix_now();
  write();
}

void ProgressFile::snapshot(int64_t global_step) {
  p_.snapshot_step = global_step;
  p_.snapshot_unix = unix_now();
  write();
}

void ProgressFile::step_done(int64_t completed) {
  p_.completed = completed;
  p_.completed_unix = unix_now();
  write();
}

// Fixed width, so that each write covers the last one whole.
void ProgressFile::write() {
  if (fd_ < 0) return;
  char line[160];
  const int n = std::snprintf(line, sizeof line, "%20" PRId64 " %20.6f %20" PRId64 " %20.6f %20" PRId64 " %20.6f\n",
                              p_.start_step, p_.start_unix, p_.snapshot_step, p_.snapshot_unix, p_.completed,
                              p_.completed_unix);
  if (n > 0 && ::pwrite(fd_, line, static_cast<size_t>(n), 0) != n) {
    ::close(fd_);  // a full disk: stop measuring, keep training
    fd_ = -1;
  }
}

JobProgress read_progress(const std::string& path) {
  JobProgress p;
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return p;
  JobProgress r;
  if (std::fscanf(f, "%" SCNd64 " %lf %" SCNd64 " %lf %" SCNd64 " %lf", &r.start_step, &r.start_unix,
                  &r.snapshot_step, &r.snapshot_unix, &r.completed, &r.completed_unix) == 6)
    p = r;
  std::fclose(f);
  return p;
}

}  // namespace ddp::train
