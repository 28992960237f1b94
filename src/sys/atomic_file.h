// Files that are either complete or absent: written to a temporary file in
// the same directory, fsynced, then renamed over the target. A crash or a
// full disk at any moment leaves the previous file intact.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace ddp::sys {

// Throws ddp::UserError naming the path and the cause (disk full, file too
// large, permission, missing directory) with a hint; removes its temp file.
// The first call makes the process ignore SIGXFSZ (if it had the default
// action), so a file size limit becomes an error to report, not a kill.
struct Piece {
  const void* data;
  size_t size;
};
void write_file_atomic(const std::string& path, const std::vector<Piece>& pieces);
void write_file_atomic(const std::string& path, const std::string& contents);

// Checks up front that `path` can be written (its directory exists or can be
// created, and a file can be made in it), so a long run does not fail at its
// very end. Creates missing parent directories. example_name: the file name
// the hint for a directory suggests.
void check_writable(const std::string& path, const std::string& example_name = "results.json");

}  // namespace ddp::sys
