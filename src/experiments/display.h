// The suite's terminal: lines that stay (a run's header, its epochs, its
// outcome) and, on a terminal, one live status line under them (progress,
// elapsed time, ETA), redrawn in place. Without a terminal (a log, a pipe)
// only the lines are written.
#pragma once
#include <chrono>
#include <string>

namespace ddp::experiments {

class Display {
 public:
  Display();
  bool tty() const { return tty_; }
  double elapsed() const;  // seconds since construction

  void line(const std::string& s);    // a line that stays, above the status line
  void status(const std::string& s);  // replaces the status line (drawn on a terminal only)
  void end_status();                  // removes the status line

 private:
  void clear();
  void draw();

  bool tty_;
  std::chrono::steady_clock::time_point start_;
  std::string status_;
  bool drawn_ = false;
};

}  // namespace ddp::experiments
