// Files that are complete or absent (sys/atomic_file.h): a symbolic link is
// written through, a device or FIFO is refused rather than replaced.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "sys/atomic_file.h"
#include "test_util.h"

namespace fs = std::filesystem;
using test_util::error_of;

namespace {

struct Dir {
  std::string path;
  Dir() {
    char t[] = "/tmp/sys-atomic-XXXXXX";
    path = mkdtemp(t);
  }
  ~Dir() { fs::remove_all(path); }
};

std::string read(const std::string& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST(AtomicFile, ReplacesAFileAndLeavesNoTemporary) {
  Dir d;
  const std::string f = d.path + "/a.json";
  ddp::sys::write_file_atomic(f, "one");
  ddp::sys::write_file_atomic(f, "two");
  EXPECT_EQ(read(f), "two");
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path), fs::directory_iterator()), 1);
}

TEST(AtomicFile, WritesThroughASymbolicLinkAndKeepsTheLink) {
  Dir d;
  const std::string target = d.path + "/real.json", link = d.path + "/link.json";
  ddp::sys::write_file_atomic(target, "old");
  fs::create_symlink(target, link);
  ddp::sys::check_writable(link);
  ddp::sys::write_file_atomic(link, "new");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(read(target), "new");
}

TEST(AtomicFile, ADeviceOrAFifoIsRefusedAndLeftAsItWas) {
  Dir d;
  const std::string fifo = d.path + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& p : {std::string("/dev/null"), fifo}) {
    const std::string e = error_of([&] { ddp::sys::write_file_atomic(p, "x"); });
    EXPECT_NE(e.find("is not a regular file"), std::string::npos) << p << ": " << e;
    EXPECT_NE(error_of([&] { ddp::sys::check_writable(p); }).find("is not a regular file"), std::string::npos) << p;
  }
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_FALSE(fs::exists("/dev/null.tmp." + std::to_string(getpid())));
}
