#include "experiments/display.h"

#include <unistd.h>

#include <iostream>

namespace ddp::experiments {

Display::Display() : tty_(isatty(STDOUT_FILENO) != 0), start_(std::chrono::steady_clock::now()) {}

double Display::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Display::line(const std::string& s) {
  clear();
  std::cout << s << "\n";
  draw();
}

void Display::status(const std::string& s) {
  status_ = s;
  if (tty_) draw();
}

void Display::end_status() {
  clear();
  status_.clear();
}

void Display::clear() {
  if (tty_ && drawn_) std::cout << "\r\033[K";
  drawn_ = false;
}

void Display::draw() {
  if (!tty_ || status_.empty()) {
    std::cout << std::flush;
    return;
  }
  std::cout << "\r\033[K\033[1m" << status_ << "\033[0m" << std::flush;
  drawn_ = true;
}

}  // namespace ddp::experiments
