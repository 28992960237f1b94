// Bytes no rank of the job sends, sent to a rank's listening port while the
// ranks connect (issue 20): Gloo's TCP transport has no authentication, so
// whoever connects to a pair's port first is accepted. Whatever arrives,
// the job must end in a clear error or carry on: never hang past the
// timeout, never crash.
//
// The port is read where an attacker who can read the store would read it
// (the rank's published address). Rank 1 joins 2 s late, so that the
// attacker's connection reaches rank 0's port before rank 1 does. In this
// Gloo build a connection starts straight with a message's 48-byte header
// (six size_t: bytes, opcode, slot, offset, length, remote offset; there is
// no handshake), so "a valid-looking header" is one with an opcode Gloo
// knows and a slot no operation waits on.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "dist_test_util.h"
#include "sys/process.h"

using namespace dist_test;

namespace {

// A tagged value (dist/store_tag.h: 5-byte mark, 32-byte tag) holding one
// Gloo TCP address (sockaddr_storage, then a sequence number).
constexpr size_t kTagged = 5 + 32;
constexpr size_t kAddressFile = kTagged + sizeof(sockaddr_storage) + sizeof(ssize_t);

struct Preamble {
  size_t nbytes, opcode, slot, offset, length, roffset;
};

std::string header(size_t opcode, size_t slot, size_t length) {
  const Preamble p{length, opcode, slot, 0, length, 0};
  return std::string(reinterpret_cast<const char*>(&p), sizeof p) + std::string(std::min<size_t>(length, 64), '\0');
}

// The port rank 0 listens on for rank 1, from its address in the store.
int find_port(const std::string& out_dir, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    const auto infos = read_infos(out_dir, 1);
    std::error_code ec;
    if (!infos[0].rendezvous_dir.empty())
      for (const auto& e : std::filesystem::directory_iterator(infos[0].rendezvous_dir, ec)) {
        if (!e.is_regular_file(ec) || e.file_size(ec) != kAddressFile) continue;
        std::ifstream f(e.path(), std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(f)), {});
        if (bytes.size() != kAddressFile) continue;
        sockaddr_in a{};
        std::memcpy(&a, bytes.data() + kTagged, sizeof a);
        if (a.sin_family == AF_INET) return ntohs(a.sin_port);
      }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return -1;
}

struct Outcome {
  bool ended = false;
  int code = -1;  // the launcher's exit code
  double seconds = 0;
  std::string output;
  bool left_behind = false;  // a ddp-* directory
};

Outcome attacked_job(const std::string& payload) {
  TempDir tmp, out, logs;
  const std::string log = logs.path + "/log";
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ddp::sys::SpawnOptions so;
  so.argv = {worker_path(), "launch", "2", "late", "1", "2000"};
  so.env = {{"TMPDIR", tmp.path}, {"DDP_TEST_OUT", out.path}, {"DDP_GLOO_TIMEOUT_S", "4"}};
  so.stdout_fd = so.stderr_fd = fd;
  so.parent_death_signal = SIGKILL;
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t launcher = ddp::sys::spawn(so);
  ::close(fd);
  Outcome o;
  const int port = find_port(out.path, 10);
  EXPECT_GT(port, 0) << "rank 0 published no address";
  if (port > 0) {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && !payload.empty())
      (void)!::send(s, payload.data(), payload.size(), MSG_NOSIGNAL);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::close(s);
  }
  int st = 0;
  while (seconds_since(t0) < 30 && ::waitpid(launcher, &st, WNOHANG) == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  o.seconds = seconds_since(t0);
  o.ended = o.seconds < 30;
  if (!o.ended) {
    ::kill(launcher, SIGKILL);
    ::waitpid(launcher, &st, 0);
  }
  o.code = ddp::sys::exit_status_of(st);
  std::ifstream in(log);
  o.output.assign(std::istreambuf_iterator<char>(in), {});
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path, ec))
    o.left_behind = o.left_behind || e.path().filename().string().rfind("ddp-", 0) == 0;
  return o;
}

void expect_clear_end(const std::string& what, const std::string& payload) {
  const Outcome o = attacked_job(payload);
  SCOPED_TRACE(what + ":\n" + o.output);
  EXPECT_TRUE(o.ended) << "the job hung";
  EXPECT_LT(o.seconds, 2 + 4 + 5) << "past rank 1's delay plus --timeout";
  // 0: the stranger was ignored; 1: a rank said what went wrong. A rank
  // killed by a signal (an abort: 134) would be a crash.
  EXPECT_TRUE(o.code == 0 || o.code == 1) << "exit code " << o.code;
  if (o.code == 1) {
    EXPECT_NE(o.output.find("rank "), std::string::npos);
    EXPECT_TRUE(o.output.find("hint: ") != std::string::npos || o.output.find("fix: ") != std::string::npos);
  }
  EXPECT_EQ(o.output.find("core dumped"), std::string::npos);
  EXPECT_FALSE(o.left_behind);
}

TEST(StrangerOnAPort, RandomBytes) {
  std::mt19937 rng(20);
  std::string junk(4096, '\0');
  for (char& c : junk) c = static_cast<char>(rng());
  expect_clear_end("4 KiB of random bytes", junk);
}

TEST(StrangerOnAPort, AValidLookingHeaderForASlotNobodyWaitsOn) {
  expect_clear_end("send to an unbound buffer, wrong slot", header(1, 123456789, 64));
}

TEST(StrangerOnAPort, HeadersOfEveryOtherKind) {
  expect_clear_end("send to a buffer, 1 TiB long", header(0, 5, size_t{1} << 40));
  expect_clear_end("a notification for a slot nobody uses", header(2, 987654, 0));
  expect_clear_end("an unknown opcode", header(77, 1, 8));
}

TEST(StrangerOnAPort, AConnectionThatSaysNothing) { expect_clear_end("silence", ""); }

}  // namespace
