#include "common/error.h"

namespace ddp {

void assert_failed(const char* expr, const char* file, int line, const std::string& msg) {
  throw std::logic_error(std::string("internal error at ") + file + ":" + std::to_string(line) +
                         ": " + expr + " failed: " + msg +
                         " (this is a bug; please report it with the command you ran)");
}

}  // namespace ddp
