// Files that are either complete or absent: written to an unnamed file in
// the same directory (O_TMPFILE; a named temporary file where the file
// system has none), fsynced, named, then renamed over the target. A crash,
// a SIGKILL or a full disk at any moment leaves the previous file intact,
// and a kill leaves no temporary file (but in the two system calls between
// the naming and the rename).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace ddp::sys {

// A symbolic link is written through (its target is replaced, the link
// stays); a path that is not a regular file (a device such as /dev/null, a
// FIFO) is refused, since renaming over it would replace it.
// Throws ddp::UserError naming the path and the cause (disk full, file too
// large, permission, missing directory, not a regular file) with a hint;
// removes its temp file.
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
