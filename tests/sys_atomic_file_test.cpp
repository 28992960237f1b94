// Files that are complete or absent (sys/atomic_file.h): a symbolic link is
// written through, a device or FIFO is refused rather than replaced, and a
// writer SIGKILLed in the middle leaves no temporary file.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

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

// A writer killed while it writes (SIGKILL, the OOM killer: no clean-up
// runs) leaves the previous file as it was and no temporary file: the
// contents go to an unnamed file (O_TMPFILE) that gets a name only once
// complete. 1 GiB takes far longer than the 10-50 ms before the kill.
TEST(AtomicFile, AWriterKilledMidWriteLeavesThePreviousFileAndNoTemporary) {
  Dir d;
  const std::string target = d.path + "/checkpoint.safetensors";
  ddp::sys::write_file_atomic(target, std::string("previous"));
  for (int trial = 0; trial < 3; ++trial) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      const std::vector<char> block(16 << 20, 'x');
      const std::vector<ddp::sys::Piece> pieces(64, ddp::sys::Piece{block.data(), block.size()});
      (void)!::write(ready[1], "r", 1);
      ddp::sys::write_file_atomic(target, pieces);
      ::_exit(0);
    }
    ::close(ready[1]);
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ::close(ready[0]);
    std::this_thread::sleep_for(std::chrono::milliseconds(10 + 20 * trial));
    ::kill(child, SIGKILL);
    int st = 0;
    ASSERT_EQ(::waitpid(child, &st, 0), child);
    ASSERT_TRUE(WIFSIGNALED(st)) << "the writer finished 1 GiB before the kill: make it larger";
    EXPECT_EQ(read(target), "previous");
    for (const auto& e : fs::directory_iterator(d.path))
      EXPECT_EQ(e.path().filename().string(), "checkpoint.safetensors") << "left behind: " << e.path();
  }
}

