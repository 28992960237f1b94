// run_experiments --variant NAME="FLAGS": the same parallel runs with other
// train_parallel flags (e.g. PowerSGD, local SGD, gradient accumulation),
// side by side like --backends (docs/mitigations.md, "The study").
#pragma once
#include <string>
#include <vector>

namespace ddp::experiments {

// One variant of the parallel runs. The unnamed variant (name "", no flags)
// is the suite without --variant: its files and labels are as they were.
struct Variant {
  std::string name;                // [A-Za-z0-9_-]+; ends the runs' file names, names them in labels
  std::string flags;               // as given, for messages and the report
  std::vector<std::string> args;   // `flags` split into words, appended to train_parallel's argv
};

// The variants of `specs` ("NAME=FLAGS" each, run_experiments' --variant), in
// order; one unnamed variant when there is none. FLAGS are split as a POSIX
// shell splits words, by wordexp(3) with WRDE_NOCMD | WRDE_UNDEF: quotes work,
// command substitution and undefined variables are refused. Throws UserError
// on a spec without '=', a bad or repeated name, or FLAGS wordexp refuses.
std::vector<Variant> parse_variants(const std::vector<std::string>& specs);

// Whether the variants name themselves (any --variant was given).
inline bool any_named(const std::vector<Variant>& vs) { return !(vs.size() == 1 && vs[0].name.empty()); }

// Parses `argv` (a train_parallel command line, argv[0] the program) as
// train_parallel does, flags and their combinations (train::validate), without
// running it. Throws UserError naming `variant` and what train_parallel refuses.
void check_train_parallel_argv(const std::vector<std::string>& argv, const Variant& variant);

}  // namespace ddp::experiments
