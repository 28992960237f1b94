// The colours of the parts of a training step, shared by every figure that
// shows them (time_breakdown.png, timeline.png), so that forward is the
// same blue everywhere.
#pragma once

namespace ddp::report {

inline constexpr const char* kForwardColor = "#4e79a7";
inline constexpr const char* kBackwardColor = "#f28e2b";
inline constexpr const char* kAllreduceColor = "#e15759";  // all-reduce (exposed, in the breakdown)
inline constexpr const char* kOptimizerColor = "#76b7b2";
inline constexpr const char* kDataColor = "#59a14f";
inline constexpr const char* kOtherColor = "#bab0ac";
inline constexpr const char* kEvaluationColor = "#edc948";

}  // namespace ddp::report
