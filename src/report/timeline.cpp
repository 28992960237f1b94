#include "report/timeline.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "report/gnuplot.h"
#include "report/palette.h"
#include "report/plot_common.h"

namespace ddp::report {

using nlohmann::json;

namespace {

constexpr int kComputeTid = 1, kCommTid = 2, kStepsTid = 3;

// hex mixed with white: share 0 is hex, 1 is white.
std::string paler(const std::string& hex, double share) {
  const long v = std::stol(hex.substr(1), nullptr, 16);
  char out[8];
  auto mix = [&](int shift) { return static_cast<int>(((v >> shift) & 0xff) * (1 - share) + 255 * share + 0.5); };
  std::snprintf(out, sizeof out, "#%02x%02x%02x", mix(16), mix(8), mix(0));
  return out;
}

// A series of bars: the events of one category (the trace's "cat").
struct Series {
  const char* cat;
  const char* title;
  std::string color;
  const char* fill;
};

std::vector<Series> series() {
  return {{"data", "data", kDataColor, "solid 0.9"},
          {"forward", "forward", kForwardColor, "solid 0.9"},
          {"backward", "backward", kBackwardColor, "solid 0.9"},
          {"wait", "waiting for an all-reduce", kAllreduceColor, "pattern 5"},
          {"allreduce", "all-reduce", kAllreduceColor, "solid 0.9"},
          {"later_rank", "all-reduce waiting for a later rank", paler(kAllreduceColor, 0.6), "solid 0.9"},
          {"transfer", "all-reduce moving bytes", kAllreduceColor, "solid 0.9"},
          {"bf16", "bf16 conversion", kOtherColor, "solid 0.9"},
          {"optimizer", "optimizer", kOptimizerColor, "solid 0.9"},
          {"evaluate", "evaluation", kEvaluationColor, "solid 0.9"},
          {"checkpoint", "checkpoint", kOtherColor, "solid 0.9"}};
}

std::string g(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

double end_of(const json& e) { return e.at("ts").get<double>() + e.at("dur").get<double>(); }

// The lanes, top first: (pid, tid) -> index, and their labels.
struct Lanes {
  std::map<std::pair<int, int>, int> index;
  std::vector<std::string> labels;
};

Lanes lanes_of(const json& events) {
  std::map<int, std::string> process;  // pid -> name
  std::map<std::pair<int, int>, std::string> thread;
  for (const auto& e : events) {
    if (e.at("ph") != "M") continue;
    if (e.at("name") == "process_name") process[e.at("pid")] = e.at("args").at("name");
    if (e.at("name") == "thread_name" && e.value("tid", 0) != kStepsTid)
      thread[{e.at("pid"), e.at("tid")}] = e.at("args").at("name");
  }
  Lanes l;
  for (const auto& [key, name] : thread) {
    l.index[key] = static_cast<int>(l.labels.size());
    const auto p = process.find(key.first);
    l.labels.push_back((p != process.end() ? p->second : "pid " + std::to_string(key.first)) + "\n" + name);
  }
  return l;
}

// The steps drawn: [first, last] on every rank, from t0 to t1 (trace
// microseconds), and where each of rank 0's begins.
struct Span {
  int64_t first = 0, last = 0;
  double t0 = 0, t1 = 0;
  std::vector<double> rank0_starts;
};

std::optional<Span> span_of(const json& events, int steps) {
  std::vector<const json*> rank0;  // rank 0's steps, in order
  for (const auto& e : events)
    if (e.at("ph") == "X" && e.value("tid", 0) == kStepsTid && e.at("pid") == 1) rank0.push_back(&e);
  std::sort(rank0.begin(), rank0.end(),
            [](const json* a, const json* b) { return a->at("ts").get<double>() < b->at("ts").get<double>(); });
  if (steps < 1 || static_cast<int>(rank0.size()) < steps) return std::nullopt;
  Span sp;
  sp.first = rank0[0]->at("args").at("step");
  sp.last = sp.first + steps - 1;
  sp.t0 = rank0[0]->at("ts");
  sp.t1 = end_of(*rank0[static_cast<size_t>(steps - 1)]);
  for (int k = 0; k < steps; ++k) sp.rank0_starts.push_back(rank0[static_cast<size_t>(k)]->at("ts"));
  for (const auto& e : events) {  // the other ranks' same steps
    if (e.at("ph") != "X" || e.value("tid", 0) != kStepsTid) continue;
    const int64_t s = e.at("args").at("step");
    if (s == sp.first) sp.t0 = std::min(sp.t0, e.at("ts").get<double>());
    if (s == sp.last) sp.t1 = std::max(sp.t1, end_of(e));
  }
  return sp;
}

// The bars of each series (series() order), as data lines:
// x y xlow xhigh ylow yhigh (ms from t0, lane).
std::vector<std::string> bars(const json& events, const Span& sp, const Lanes& lanes, const std::vector<Series>& all) {
  std::vector<std::string> rows(all.size());
  const int n = static_cast<int>(lanes.labels.size());
  // An all-reduce split into its parts is drawn as the parts.
  const bool has_parts = std::any_of(events.begin(), events.end(), [](const json& e) {
    return e.value("cat", "") == "transfer" || e.value("cat", "") == "later_rank";
  });
  for (const auto& e : events) {
    if (e.at("ph") != "X") continue;
    const int64_t step = e.contains("args") ? e["args"].value("step", sp.first - 1) : sp.first - 1;
    if (step < sp.first || step > sp.last) continue;  // another step's events, even where the spans overlap
    const auto lane = lanes.index.find({e.at("pid"), e.value("tid", 0)});
    const auto kind = std::find_if(all.begin(), all.end(), [&](const Series& s) { return e.value("cat", "") == s.cat; });
    if (lane == lanes.index.end() || kind == all.end() || (has_parts && std::string(kind->cat) == "allreduce")) continue;
    const double a = std::max(e.at("ts").get<double>(), sp.t0), b = std::min(end_of(e), sp.t1);
    if (b <= a) continue;
    const double x0 = (a - sp.t0) / 1000, x1 = (b - sp.t0) / 1000, y = n - 1 - lane->second;
    rows[static_cast<size_t>(kind - all.begin())] += g((x0 + x1) / 2) + " " + g(y) + " " + g(x0) + " " + g(x1) + " " +
                                                      g(y - 0.36) + " " + g(y + 0.36) + "\n";
  }
  return rows;
}

// Everything of the script but its plot command.
std::string settings(const PlotFiles& p, const json& info, const Span& sp, const Lanes& lanes) {
  const int n = static_cast<int>(lanes.labels.size());
  std::string s = gp_preamble(plot::image("timeline"), 1500, 240 + 75 * n, p.title);
  s += "set title " + gp_label(p.title + " (" + info.value("backend", std::string("?")) + ", overlap " +
                               info.value("overlap", std::string("?")) + ")") + "\n";
  s += "set xlabel " + gp_label("milliseconds from the first rank's start of step " + std::to_string(sp.first) +
                                " (dashed: rank 0's steps)") + "\n";
  s += "unset grid\nset grid xtics lw 1 lc rgb '#e4e4e4'\nset border 1\nset ytics scale 0 font ',12'\n";
  std::string tics;
  for (int i = 0; i < n; ++i)
    tics += (i ? ", " : "") + gp_dquote(gp_text(lanes.labels[static_cast<size_t>(i)])) + " " + std::to_string(n - 1 - i);
  s += "set ytics (" + tics + ")\n";
  s += "set yrange [-0.6:" + g(n - 0.4) + "]\nset xrange [0:" + g((sp.t1 - sp.t0) / 1000) + "]\n";
  s += "set bmargin 8\nset key at screen 0.5, screen 0.015 center bottom horizontal font ',12' samplen 1.5\n";
  for (size_t k = 0; k < sp.rank0_starts.size(); ++k) {  // where each of rank 0's steps begins
    const double x = (sp.rank0_starts[k] - sp.t0) / 1000;
    const std::string id = std::to_string(k + 1);
    s += "set arrow " + id + " from first " + g(x) + ", graph 0 to first " + g(x) +
         ", graph 1 nohead dt 2 lw 1 lc rgb '#888888' back\n";
    s += "set label " + id + " " + gp_label("step " + std::to_string(sp.first + static_cast<int64_t>(k))) +
         " at first " + g(x) + ", graph 1 left offset 0.3,0.6 font ',12' tc rgb '#555555'\n";
  }
  return s;
}

}  // namespace

std::optional<PlotFiles> make_timeline(const json& trace, int steps) {
  const json& events = trace.at("traceEvents");
  const auto sp = span_of(events, steps);
  if (!sp) return std::nullopt;
  const Lanes lanes = lanes_of(events);
  const auto all = series();
  const std::vector<std::string> rows = bars(events, *sp, lanes, all);

  PlotFiles p;
  p.name = "timeline";
  const json info = trace.value("otherData", json::object());
  const int world = info.value("world_size", 1);
  p.title = (steps == 1 ? "Step " + std::to_string(sp->first)
                        : "Steps " + std::to_string(sp->first) + (steps == 2 ? " and " : " to ") +
                              std::to_string(sp->last)) +
            " of " + std::to_string(world) + (world == 1 ? " process" : " ranks") + ", thread by thread";
  std::string data, plot;
  int index = 0;
  for (size_t k = 0; k < all.size(); ++k) {
    if (rows[k].empty()) continue;
    data += (index ? "\n\n" : "") + std::string("# ") + all[k].cat + ": x y xlow xhigh ylow yhigh (ms, lane)\n" + rows[k];
    plot += std::string(plot.empty() ? "plot " : ", \\\n     ") + "'timeline.dat' index " + std::to_string(index++) +
            " using 1:2:3:4:5:6 with boxxyerror fs " + all[k].fill + " noborder lc rgb " + gp_quote(all[k].color) +
            " title " + gp_label(all[k].title);
  }
  p.data.push_back({"timeline.dat", data});
  p.script = settings(p, info, *sp, lanes) + (plot.empty() ? "plot NaN notitle" : plot) + "\n";
  return p;
}

std::string timeline_markdown(const json& metrics) {
  if (!metrics.contains("timeline")) return "";
  const json& t = metrics["timeline"];
  const std::string title = t.value("title", std::string("Timeline"));
  return "## Timeline\n\n![" + title + "](timeline.png)\n\nFrom `" +
         t.value("trace_file", std::string("")) + "` (" + t.value("label", std::string("")) +
         "): one lane per rank and thread, time running to the right, in the colours of the time breakdown "
         "(forward blue, backward orange, all-reduce red and paler while it waits for a later rank, optimizer teal). "
         "A red bar on a communication lane that lies under the orange backward of the same rank's compute lane is "
         "communication hidden behind backward; a hatched bar on a compute lane is the part of the all-reduce that "
         "backward did not hide, which that rank waited for. "
         "The first run of each parallel configuration recorded such a trace (`trace_<configuration>.json`): open it "
         "in ui.perfetto.dev or chrome://tracing to see every layer and bucket with its arguments.\n\n";
}

}  // namespace ddp::report
