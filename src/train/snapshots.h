// What rank 0 leaves for train_parallel's launcher so that it can restart a
// job that lost a rank (launch/restarts.h, docs/restarts.md): snapshots of
// the whole training state every few seconds, and a progress file that says
// how far training got since the latest one.
//
// A snapshot is a checkpoint (train/resume.h, write_checkpoint) written to
// one path and replaced atomically; --resume restores it bit for bit, so a
// restart from it replays the lost steps exactly.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace ddp::train {

// When rank 0's next snapshot is due: `interval_s` after the last one (or
// after the start). An interval of 0 is never due.
class SnapshotClock {
 public:
  explicit SnapshotClock(double interval_s);
  bool due() const;
  void written();  // a snapshot was written now: the next is due an interval later

 private:
  using Clock = std::chrono::steady_clock;
  std::chrono::duration<double> interval_;
  Clock::time_point next_;
};

// Seconds since the Unix epoch (the launcher and rank 0 share the machine's
// clock: the progress file's times are compared with the launcher's).
double unix_now();

// How far an attempt of the job got. Steps are global steps; a figure not
// known (yet) is -1 or NaN.
struct JobProgress {
  int64_t start_step = -1;      // where this attempt began training (a restart: its snapshot's step)
  double start_unix = -1;       // when its first step began
  int64_t snapshot_step = -1;   // the latest snapshot this attempt wrote
  double snapshot_unix = -1;
  int64_t completed = -1;       // steps done: the next step to run
  double completed_unix = -1;   // when the last of them ended
};

// Rank 0's progress file: overwritten in place after every step (one pwrite
// of a fixed-width line, no fsync: the launcher reads it on this machine
// once the ranks have ended). An empty path writes nothing. Never throws:
// progress is a measurement, not the run.
class ProgressFile {
 public:
  explicit ProgressFile(const std::string& path);
  ~ProgressFile();
  ProgressFile(const ProgressFile&) = delete;
  ProgressFile& operator=(const ProgressFile&) = delete;

  void started(int64_t global_step);  // training begins at global_step (called once, before its first step)
  void snapshot(int64_t global_step);  // a snapshot of global_step is in place
  void step_done(int64_t completed);   // steps done so far (global)

 private:
  void write();
  int fd_ = -1;
  JobProgress p_;
};

// What a progress file holds; a missing or unreadable one: all unknown.
JobProgress read_progress(const std::string& path);

}  // namespace ddp::train
