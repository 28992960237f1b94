// Files that are either complete or absent: written to a temporary file in
// the same directory, fsynced, then renamed over the target. A crash or a
// full disk at any moment leaves the previous file intact.
#pragma once
#include <string>

namespace ddp::report {

// Throws ddp::UserError naming the path and the cause (disk full, file too
// large, permission, missing directory) with a hint; removes its temp file.
void write_file_atomic(const std::string& path, const std::string& contents);

// Checks up front that `path` can be written (its directory exists or can be
// created, and a file can be made in it), so a long run does not fail at its
// very end. Creates missing parent directories.
void check_writable(const std::string& path);

}  // namespace ddp::report
