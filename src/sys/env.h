// Reading this process's environment, and building a child's.
//
// A variable that is set to the empty string counts as unset everywhere:
// `FOO= prog` is how a shell user clears a variable for one command.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ddp::sys {

// Variables for a child, as (NAME, value) pairs.
using EnvVars = std::vector<std::pair<std::string, std::string>>;

// True when `name` is set to a non-empty value.
bool env_set(const char* name);

// The value of `name`, or `fallback` when it is unset or empty.
std::string env_string(const char* name, const std::string& fallback = "");

// The value of `name` as an integer >= 0; `fallback` when unset or empty.
// Throws ddp::UserError naming the variable and its value when it is set to
// anything else; the hint says "set NAME to <expected>, or unset it".
int env_int(const char* name, int fallback, const std::string& expected = "a whole number");

// The value of `name` as an integer >= 0, or nullopt when it is unset,
// empty, or not such an integer (for variables another program sets, whose
// junk we ignore rather than stop on).
std::optional<int> try_env_int(const char* name);

// "NAME=value" strings for a child: this process's environment without the
// variables `overrides` names, then `overrides` in their order.
std::vector<std::string> environment_with(const EnvVars& overrides);

}  // namespace ddp::sys
