// The command-line flags the trainers share, their ranges, and how errors
// reach the user.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "train/config.h"

namespace ddp::train {

// The seed's interface spells the learning rate "-lr" (one dash, two
// letters), which CLI11 cannot declare; it is rewritten to --learning-rate.
std::vector<std::string> normalise_args(int argc, char** argv);

// Adds the flags of train_serial (and train_parallel) to `app`.
void add_training_flags(CLI::App& app, TrainConfig& cfg);

// Checks what CLI11's validators cannot (cross-flag rules). Throws UserError.
void validate(const TrainConfig& cfg);

// Runs `body` and turns every error into one message and an exit status:
// 0 ok, 1 runtime failure (UserError / other), 2 bad command line.
int run_main(const std::string& program, const std::function<int()>& body);

// A finite-number validator (CLI::Range lets NaN through).
CLI::Validator finite_in(double lo, double hi, bool lo_open = false);

}  // namespace ddp::train
