// The private directory of one job on this machine (the local launcher's
// rendezvous), made on start and removed however the job ends:
//
//  - The launcher returns or throws: the destructor removes it.
//  - The launcher is killed (SIGKILL, the OOM killer), so its ranks die too
//    (PR_SET_PDEATHSIG): a guardian process removes it once the launcher
//    and every rank are gone. The guardian reads a pipe whose write end only
//    the launcher and its ranks hold (keep_open_fd, which each rank inherits),
//    so end of file means all of them have ended. The directory therefore
//    outlives a rank that dies while the launcher lives (a restart can meet
//    there again). The guardian is not the launcher's child (double fork) and
//    runs in its own session, so a signal to the job's process group or a
//    hang-up does not reach it; it holds nothing the job's reader waits on
//    (its standard streams are /dev/null).
//  - Everything is killed at once (kill -9 of the whole group, power loss):
//    the next JobDir made in the same parent directory sweeps it. A
//    launcher holds flock(LOCK_EX) on its directory for its whole life and
//    marks it (a ".launcher" file) only once it holds the lock, so a marked
//    directory whose lock is free belongs to a launcher that is gone.
#pragma once
#include <string>
#include <sys/types.h>

namespace ddp::sys {

class JobDir {
 public:
  // Sweeps `parent` (sweep_job_dirs), then makes parent/ddp-XXXXXX (mkdtemp,
  // mode 0700), locks and marks it, and starts its guardian. Throws
  // ddp::UserError when the directory cannot be made.
  explicit JobDir(const std::string& parent);
  ~JobDir();
  JobDir(const JobDir&) = delete;
  JobDir& operator=(const JobDir&) = delete;

  const std::string& path() const { return path_; }
  // A descriptor (close-on-exec) that every process of the job must keep
  // open for its whole life: pass it in SpawnOptions::inherit_fds.
  int keep_open_fd() const { return alive_write_; }

 private:
  void start_guardian(int alive_read);
  std::string path_;
  int lock_fd_ = -1;
  int alive_write_ = -1;
};

// Removes the directories parent/ddp-?????? of this user whose launcher is
// gone (marked and unlocked, see above); leaves everything else alone
// (others' directories, unmarked ones, symbolic links). Returns how many it
// removed. Never throws.
int sweep_job_dirs(const std::string& parent);

}  // namespace ddp::sys
