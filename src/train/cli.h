// The command-line flags the trainers share, their ranges, and how errors
// reach the user.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "common/enum_names.h"
#include "train/config.h"

namespace ddp::train {

// The seed's interface spells the learning rate "-lr" (one dash, two
// letters), which CLI11 cannot declare; it is rewritten to --learning-rate.
std::vector<std::string> normalise_args(int argc, char** argv);

// Which groups of the trainers' flags to add. A program that passes them on
// to the trainers (run_experiments) registers the ones it offers with the
// same names, ranges and defaults.
struct TrainingFlagSet {
  bool run = true;          // -e,--epochs, -b,--batch-size, --learning-rate, --seed, --threads
  bool data = true;         // --dataset, --data-dir, --limit
  bool save_results = true; // --save-results
  bool dropout = true;      // --dropout
  bool precision = true;    // --precision
  bool progress = true;     // --no-progress
  bool checkpoints = true;  // --checkpoint-dir, --checkpoint-every, --resume
  bool trace = true;        // --trace, --trace-steps
};

// Adds the flags of train_serial (and train_parallel) to `app`, writing into cfg.
void add_training_flags(CLI::App& app, TrainConfig& cfg, TrainingFlagSet which = {});

// Checks what CLI11's validators cannot (cross-flag rules). Throws UserError.
void validate(const TrainConfig& cfg);

// Checks that the files the run will write (--save-results, --trace) can
// be written, before any training. Throws UserError.
void check_output_paths(const TrainConfig& cfg);

// Runs `body` and turns every error into one message and an exit status:
// 0 ok, 1 runtime failure (UserError / other), 2 bad command line.
int run_main(const std::string& program, const std::function<int()>& body);

// A finite-number validator (CLI::Range lets NaN through).
CLI::Validator finite_in(double lo, double hi, bool lo_open = false);

// A transform that turns one of E's names (common/enum_names.h) into E, so
// the flag is parsed once, here; any other word is rejected naming the
// choices.
template <NamedEnum E>
CLI::Validator one_of() {
  const std::string choices = "{" + enum_choices<E>(",", ",") + "}";
  return CLI::Validator(
      [choices](std::string& s) -> std::string {
        const auto v = enum_from_string<E>(s);
        if (!v) return "'" + s + "' is not one of " + choices;
        s = std::to_string(static_cast<int>(*v));  // what CLI11 then converts into E
        return std::string();
      },
      choices);
}

// Adds an option whose value is one of E's names; its default is shown by name.
template <NamedEnum E>
CLI::Option* add_enum_option(CLI::App& app, const std::string& name, E& value, const std::string& description) {
  return app.add_option(name, value, description)->transform(one_of<E>())->type_name("TEXT")->default_str(
      to_string(value));
}

}  // namespace ddp::train
