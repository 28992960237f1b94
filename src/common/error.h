// Errors a user can cause (bad flags, bad files, dead peers) are UserError:
// one message naming the cause and one hint naming the fix. Internal
// invariants use DDP_ASSERT, which also names the file and line.
#pragma once
#include <stdexcept>
#include <string>

namespace ddp {

class UserError : public std::runtime_error {
 public:
  UserError(std::string what, std::string hint = "")
      : std::runtime_error(std::move(what)), hint_(std::move(hint)) {}
  const std::string& hint() const { return hint_; }

 private:
  std::string hint_;
};

// A failure of the communication between ranks (a peer died, hung or could
// not be reached): the one kind of error a restart of the job can cure
// (launch/restarts.h). Everything else a rank reports (bad input, a
// diverged run, a refused checkpoint) would happen again.
class PeerError : public UserError {
 public:
  using UserError::UserError;
};

[[noreturn]] void assert_failed(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace ddp

#define DDP_ASSERT(cond, msg)                                         \
  do {                                                                \
    if (!(cond)) ::ddp::assert_failed(#cond, __FILE__, __LINE__, msg); \
  } while (0)
