// Small text helpers of the benchmark suite: timestamps, shell quoting (for
// the logged command lines), exact numbers on a command line, reading a file.
#pragma once
#include <string>

namespace ddp::experiments {

// The local time in strftime's `format`, e.g. "%Y%m%d_%H%M%S".
std::string now_string(const char* format);

// `s` as one POSIX shell word: as is when it holds only safe characters,
// else single-quoted.
std::string shell_quote(const std::string& s);

// A double that reads back as the same value ("%.17g").
std::string exact(double v);

// A file's contents; "" when it cannot be read.
std::string read_text(const std::string& path);

}  // namespace ddp::experiments
