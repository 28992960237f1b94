#include "train/progress.h"

#include <unistd.h>

#include <cstdio>

namespace ddp::train {

using Clock = std::chrono::steady_clock;

Progress::Progress(bool speaks, bool bar, int epochs, int world_size)
    : speaks_(speaks), bar_(speaks && bar && isatty(STDOUT_FILENO) != 0), epochs_(epochs), world_(world_size) {}

void Progress::start_epoch(int epoch, int64_t steps) {
  epoch_ = epoch;
  steps_ = steps;
  start_ = last_draw_ = Clock::now();
}

void Progress::step(int64_t done, double running_loss, int64_t samples) {
  if (!bar_) return;
  const auto now = Clock::now();
  if (done < steps_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double rate = secs > 0 ? samples / secs : 0;
  const double eta = done > 0 ? secs * (steps_ - done) / done : 0;
  const int width = 24, filled = steps_ > 0 ? static_cast<int>(width * done / steps_) : width;
  std::string bar(filled, '#');
  bar.resize(width, '.');
  std::printf("\repoch %d/%d [%s] %lld/%lld  loss %.4f  %.0f samples/s  ETA %.0fs   ", epoch_ + 1, epochs_,
              bar.c_str(), static_cast<long long>(done), static_cast<long long>(steps_), running_loss, rate, eta);
  std::fflush(stdout);
  drawn_ = true;
}

void Progress::end_epoch(double loss, double test_accuracy, double seconds, double samples_per_s) {
  if (!speaks_) return;
  clear_bar();
  std::printf("epoch %d/%d  loss %.4f  test accuracy %.2f%%  %.1f s  %.0f samples/s\n", epoch_ + 1, epochs_, loss,
              100 * test_accuracy, seconds, samples_per_s);
  std::fflush(stdout);
}

void Progress::message(const std::string& line) {
  if (!speaks_) return;
  clear_bar();
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

void Progress::clear_bar() {
  if (drawn_) std::printf("\r\033[K");
  drawn_ = false;
  std::fflush(stdout);
}

}  // namespace ddp::train
