#include "report/gnuplot.h"

#include "sys/process.h"
#include "sys/subprocess.h"

namespace ddp::report {

std::string find_gnuplot() { return sys::find_executable("gnuplot"); }

std::string check_gnuplot(const std::string& gnuplot) {
  if (gnuplot.empty()) return "gnuplot is not installed (not found in $PATH)";
  sys::ChildOptions o;
  o.argv = {gnuplot, "-e", "set terminal pngcairo; set output '/dev/null'; plot 1"};
  std::string messages;
  o.on_line = [&](const std::string& line, bool) {
    if (!line.empty()) messages += line + "\n";
  };
  const sys::ChildResult r = sys::run_child(o);
  if (r.exit_status != 0 || messages.find("unknown or ambiguous terminal") != std::string::npos)
    return "gnuplot (" + gnuplot + ") cannot draw PNGs with the pngcairo terminal" +
           (messages.empty() ? std::string() : ": " + messages.substr(0, messages.find('\n')));
  return "";
}

GnuplotRun run_gnuplot(const std::string& gnuplot, const std::string& dir, const std::string& script) {
  GnuplotRun run;
  sys::ChildOptions o;
  o.argv = {gnuplot, script};
  o.cwd = dir;
  std::string messages;
  o.on_line = [&](const std::string& line, bool) {
    if (!line.empty()) messages += line + "\n";
  };
  const sys::ChildResult r = sys::run_child(o);
  run.ok = r.exit_status == 0;
  run.error = run.ok ? "" : (messages.empty() ? "gnuplot exited with status " + std::to_string(r.exit_status) : messages);
  return run;
}

std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "''";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out + "'";
}

std::string gp_text(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '_' || c == '^' || c == '@' || c == '&' || c == '~' || c == '{' || c == '}' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string gp_label(const std::string& s) { return gp_quote(gp_text(s)); }

std::string gp_dquote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '"' || c == '\\') out += std::string("\\") + c;
    else out += c;
  }
  return out + "\"";
}

std::string gp_preamble(const std::string& png, int width, int height, const std::string& comment) {
  std::string s;
  s += "# " + comment + "\n";
  const std::string name = png.substr(png.rfind('/') + 1);  // the script is named after its image
  s += "# Drawn by run_experiments; edit and redraw with:  gnuplot " + name.substr(0, name.rfind('.')) + ".gp\n";
  s += "set terminal pngcairo size " + std::to_string(width) + "," + std::to_string(height) +
       " enhanced font 'DejaVu Sans,14' linewidth 1 rounded\n";
  s += "set output " + gp_quote(png) + "\n";
  s += "set encoding utf8\n";
  s += "set border 3 lw 1.2 lc rgb '#555555'\n";
  s += "set tics nomirror out scale 0.75 textcolor rgb '#333333'\n";
  s += "set grid xtics ytics lw 1 lc rgb '#e4e4e4' dt 1\n";
  s += "set key opaque box lc rgb '#d0d0d0' samplen 2.5 spacing 1.15\n";
  s += "set title font ',18'\n";
  s += "set xlabel font ',15'\n";
  s += "set ylabel font ',15'\n";
  s += "set datafile missing 'NaN'\n";
  return s;
}

}  // namespace ddp::report
