#include "common/trace.h"

#include "common/error.h"

namespace ddp::trace {

Recorder::Recorder(int64_t first, int64_t end, size_t events_per_step, size_t extra) : first_(first), end_(end) {
  DDP_ASSERT(first >= 0 && first < end, "trace window [" + std::to_string(first) + ", " + std::to_string(end) +
                                            ") must hold at least one step");
  const size_t capacity = static_cast<size_t>(end - first) * events_per_step + extra;
  for (Buffer& b : buffers_) {
    b.events = std::make_unique<Event[]>(capacity);
    b.capacity = capacity;
  }
}

uint64_t Recorder::dropped() const {
  uint64_t n = 0;
  for (const Buffer& b : buffers_) n += b.dropped;
  return n;
}

}  // namespace ddp::trace
