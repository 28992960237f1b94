// Drawing with gnuplot: finding it, checking it can write PNG (pngcairo),
// running a script, and the pieces every script shares (terminal, style,
// safely quoted strings).
#pragma once
#include <string>

namespace ddp::report {

constexpr const char* kGnuplotInstallHint = "install gnuplot with: apt-get install gnuplot-nox";

// The gnuplot executable in $PATH, or "" when there is none.
std::string find_gnuplot();

// "" when `gnuplot` can draw PNGs with the pngcairo terminal; otherwise why not.
std::string check_gnuplot(const std::string& gnuplot);

struct GnuplotRun {
  bool ok = false;
  std::string error;  // gnuplot's messages when it failed
};
// Runs `gnuplot script` with `dir` as the working directory (scripts name
// their data files and outputs relative to it).
GnuplotRun run_gnuplot(const std::string& gnuplot, const std::string& dir, const std::string& script);

// A gnuplot single-quoted string literal: no escapes are processed in it
// ('' stands for a quote).
std::string gp_quote(const std::string& s);
// Text for an enhanced-mode label: the characters enhanced mode treats as
// markup (_ ^ @ & ~ { }) are escaped, so that "parallel_2p" prints as is.
std::string gp_text(const std::string& s);
// gp_quote(gp_text(s)).
std::string gp_label(const std::string& s);
// A gnuplot double-quoted string literal: a newline in s becomes a line
// break of the text; backslashes and quotes are escaped. For enhanced text,
// pass s through gp_text first (markup like {/*0.8 ...} is kept as is).
std::string gp_dquote(const std::string& s);

// The first lines of every script: pngcairo terminal of width x height with
// readable fonts, the output file `png` (relative to where the script runs;
// the script is named after it: ../speedup.png is drawn by speedup.gp), and
// the shared style (grid, tics, key).
std::string gp_preamble(const std::string& png, int width, int height, const std::string& comment);

}  // namespace ddp::report
