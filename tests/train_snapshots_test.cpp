// Rank 0's progress file and snapshot clock (train/snapshots.h): what the
// launcher reads after a failure to record a restart.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <thread>

#include "train/snapshots.h"

using namespace ddp::train;

namespace {

struct TempFile {
  std::string path;
  TempFile() {
    std::string t = (std::filesystem::temp_directory_path() / "progress-XXXXXX").string();
    ::close(::mkstemp(t.data()));
    path = t;
  }
  ~TempFile() { std::filesystem::remove(path); }
};

}  // namespace

TEST(ProgressFile, HoldsTheLatestPositionsAndTimes) {
  TempFile f;
  {
    ProgressFile p(f.path);
    const double t0 = unix_now();
    p.started(120);
    EXPECT_EQ(read_progress(f.path).start_step, 120);
    EXPECT_EQ(read_progress(f.path).snapshot_step, -1);  // none written by this attempt yet
    p.step_done(121);
    p.snapshot(121);
    p.step_done(12345678900);  // a longer line, then a shorter one over it
    p.step_done(130);
    const JobProgress got = read_progress(f.path);
    EXPECT_EQ(got.start_step, 120);
    EXPECT_EQ(got.snapshot_step, 121);
    EXPECT_EQ(got.completed, 130);
    EXPECT_GE(got.start_unix, t0 - 1);
    EXPECT_LE(got.start_unix, got.snapshot_unix);
    EXPECT_LE(got.snapshot_unix, got.completed_unix);
  }
  EXPECT_EQ(read_progress(f.path).completed, 130);  // it outlives the writer
}

TEST(ProgressFile, AMissingOrEmptyPathIsUnknownAndWritesNothing) {
  const JobProgress none = read_progress("/nonexistent/progress");
  EXPECT_EQ(none.completed, -1);
  EXPECT_EQ(none.snapshot_step, -1);
  ProgressFile quiet("");
  quiet.started(1);  // no file, no error
  quiet.step_done(2);
}

TEST(SnapshotClock, IsDueAfterItsIntervalAndNeverWithoutOne) {
  SnapshotClock never(0);
  EXPECT_FALSE(never.due());
  SnapshotClock clock(0.05);
  EXPECT_FALSE(clock.due());
  std::this_thread::sleep_for(std::chrono::milliseconds(70));
  EXPECT_TRUE(clock.due());
  clock.written();
  EXPECT_FALSE(clock.due());
}
