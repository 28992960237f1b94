// Machine-wide claims on cores, so that jobs of this program started side by
// side bind to different cores (sys/cores.h).
//
// Each core has a file in the claim directory (core_claim_dir); a claim is
// an open-file-description write lock (F_OFD_SETLK) on one byte of it, a
// "slot". The kernel drops it when the process ends, however it ends, so a
// claim never outlives its job. The number of locked slots is how many
// processes have bound to the core. Claiming slot 0 is how a process takes a
// core nobody has claimed: of two that race for it, one gets it.
#pragma once
#include <string>
#include <vector>

namespace ddp::sys {

// DDP_CORE_CLAIM_DIR when set; else /run/lock/ddp-cores where /run/lock is
// writable (shared by every network namespace and user of the machine);
// else /tmp/ddp-cores.
std::string core_claim_dir();

class CoreClaims {
 public:
  // Creates the directory (mode 01777, as /tmp) when it is missing.
  explicit CoreClaims(const std::string& dir);
  // False when the directory cannot be used (then nothing is claimed).
  bool usable() const { return usable_; }
  // How many slots of `cpu` other processes hold (0..kSlots); -1 when its
  // file cannot be opened.
  int count(int cpu);
  // Takes slot 0 of `cpu`: true when nobody held it.
  bool claim_free(int cpu);
  // Takes the lowest slot of `cpu` nobody holds: false when all are taken.
  bool claim_shared(int cpu);

  static constexpr int kSlots = 64;

 private:
  int fd(int cpu);  // the core's file, opened once and kept open (the claims live with it)
  std::string dir_;
  bool usable_ = false;
  std::vector<std::pair<int, int>> fds_;  // (cpu, fd)
};

}  // namespace ddp::sys
