// Checks of a --trace file (train/trace_file.h) that the train and apps
// tests share: times inside the traced steps, the lanes of every rank, and
// how completely the compute lane's top-level events cover each step.
#pragma once
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace trace_test {

using nlohmann::json;

constexpr int kComputeTid = 1, kStepsTid = 3;
constexpr double kEpsUs = 0.002;  // ts and dur are rounded to the nanosecond

inline std::vector<json> complete_events(const json& doc) {
  std::vector<json> out;
  for (const auto& e : doc.at("traceEvents"))
    if (e.at("ph") == "X") out.push_back(e);
  return out;
}

// The "steps" lane's events of rank r (pid r + 1), in order.
inline std::vector<json> steps_of(const json& doc, int pid) {
  std::vector<json> out;
  for (const auto& e : complete_events(doc))
    if (e.at("pid") == pid && e.at("tid") == kStepsTid) out.push_back(e);
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) { return a["ts"].get<double>() < b["ts"].get<double>(); });
  return out;
}

// Each event (and counter) that does not lie within its rank's traced
// steps (first step's start to last step's end), described.
inline std::vector<std::string> events_outside_steps(const json& doc) {
  std::vector<std::string> bad;
  std::map<int, std::pair<double, double>> span;  // pid -> traced steps
  for (const auto& e : complete_events(doc)) {
    if (e.at("tid") != kStepsTid) continue;
    const int pid = e.at("pid");
    const double a = e.at("ts"), b = a + e.at("dur").get<double>();
    auto [it, fresh] = span.try_emplace(pid, a, b);
    if (!fresh) it->second = {std::min(it->second.first, a), std::max(it->second.second, b)};
  }
  for (const auto& e : doc.at("traceEvents")) {
    if (e.at("ph") == "M") continue;
    const int pid = e.at("pid");
    const double a = e.at("ts").get<double>(), d = e.value("dur", 0.0);
    const auto it = span.find(pid);
    if (it == span.end() || d < 0 || a < it->second.first - kEpsUs || a + d > it->second.second + kEpsUs)
      bad.push_back(e.value("name", "?") + " of pid " + std::to_string(pid) + " at " + std::to_string(a) + " us for " +
                    std::to_string(d) + " us");
  }
  return bad;
}

// pid -> the names of its thread lanes.
inline std::map<int, std::set<std::string>> lanes(const json& doc) {
  std::map<int, std::set<std::string>> out;
  for (const auto& e : doc.at("traceEvents"))
    if (e.at("ph") == "M" && e.at("name") == "thread_name") out[e.at("pid")].insert(e.at("args").at("name"));
  return out;
}

struct Gap {
  double largest_share = 0;  // of its step
  std::string where;
};
// The largest gap between the compute lane's top-level events inside a
// step (and from the step's start and to its end), as a share of the step,
// over every traced step of every rank.
inline Gap largest_compute_gap(const json& doc) {
  Gap g;
  const auto all = complete_events(doc);
  for (const auto& step : all) {
    if (step.at("tid") != kStepsTid) continue;
    const double s0 = step.at("ts"), s1 = s0 + step.at("dur").get<double>();
    std::vector<std::pair<double, double>> inside;
    for (const auto& e : all) {
      if (e.at("pid") != step.at("pid") || e.at("tid") != kComputeTid) continue;
      const double a = e.at("ts"), b = a + e.at("dur").get<double>();
      if (a >= s0 - kEpsUs && b <= s1 + kEpsUs) inside.push_back({a, b});
    }
    std::sort(inside.begin(), inside.end());
    double covered = s0, largest = 0;
    for (const auto& [a, b] : inside) {  // nested events only extend `covered` as far as their parent
      largest = std::max(largest, a - covered);
      covered = std::max(covered, b);
    }
    largest = std::max(largest, s1 - covered);
    const double share = largest / (s1 - s0);
    if (share >= g.largest_share)
      g = {share, step.at("name").get<std::string>() + " of pid " + std::to_string(step.at("pid").get<int>())};
  }
  return g;
}

}  // namespace trace_test
