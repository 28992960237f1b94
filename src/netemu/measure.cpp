#include "netemu/measure.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "common/error.h"

namespace ddp::netemu {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kIoTimeoutS = 5;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A socket descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

[[noreturn]] void fail(const std::string& what) {
  throw UserError("measuring the emulated network failed: " + what + ": " + std::strerror(errno),
                  "check that the network is still up (its holder processes alive)");
}

sockaddr_in address_of(const Node& n, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, n.address.c_str(), &a.sin_addr);
  return a;
}

// A TCP socket inside node n's namespace, with bounded blocking calls.
int tcp_socket_in(const Node& n) {
  int fd;
  {
    EnterNetns in(n.netns_path);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) fail("socket");
  timeval tv{kIoTimeoutS, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds connect() too
  return fd;
}

// A connected pair: `client` in node a, `server` the accepted end in node b.
void connect_pair(const EmulatedNetwork& net, int a, int b, Fd& client, Fd& server) {
  Fd listener(tcp_socket_in(net.node(b)));
  sockaddr_in addr = address_of(net.node(b), 0);
  if (bind(listener.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("bind");
  socklen_t len = sizeof addr;
  if (listen(listener.fd, 1) != 0 || getsockname(listener.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    fail("listen");
  client.fd = tcp_socket_in(net.node(a));
  if (connect(client.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    fail("connect from node " + std::to_string(a) + " to " + net.node(b).address);
  pollfd p{listener.fd, POLLIN, 0};
  if (poll(&p, 1, kIoTimeoutS * 1000) != 1) fail("accept");
  server.fd = accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (server.fd < 0) fail("accept");
}

void check_nodes(const EmulatedNetwork& net, int a, int b) {
  if (a < 0 || b < 0 || a >= net.size() || b >= net.size() || a == b)
    throw UserError("a measurement between nodes " + std::to_string(a) + " and " + std::to_string(b) + " of " +
                        std::to_string(net.size()),
                    "give two different nodes of the network (at least 2 nodes)");
}

}  // namespace

Goodput measure_goodput(const EmulatedNetwork& net, int from, int to, double seconds) {
  check_nodes(net, from, to);
  if (!(seconds > 0 && seconds <= 60)) throw UserError("a goodput measurement of " + std::to_string(seconds) + " s",
                                                       "give 0 to 60 seconds");
  Fd sender, receiver;
  connect_pair(net, from, to, sender, receiver);
  // The sender runs on its own thread for `seconds`, then closes.
  std::thread send_thread([&] {
    std::vector<char> buf(1 << 20, 'x');
    const auto start = Clock::now();
    while (since(start) < seconds)
      if (send(sender.fd, buf.data(), buf.size(), MSG_NOSIGNAL) < 0 && errno != EINTR) break;
    shutdown(sender.fd, SHUT_WR);
  });
  std::vector<char> buf(1 << 20);
  const auto start = Clock::now();
  Clock::time_point counted_from{}, last{};
  double counted = 0;
  bool counting = false, failed = false;
  for (;;) {
    const ssize_t got = recv(receiver.fd, buf.data(), buf.size(), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      failed = got < 0;
      break;
    }
    last = Clock::now();
    if (counting) counted += static_cast<double>(got);
    if (!counting && since(start) >= seconds / 5) {
      counting = true;
      counted_from = last;
    }
  }
  send_thread.join();
  if (failed || !counting) fail("receiving from node " + std::to_string(from));
  Goodput g;
  g.bytes = counted;
  g.seconds = std::chrono::duration<double>(last - counted_from).count();
  g.bit_per_s = g.seconds > 0 ? 8 * counted / g.seconds : 0;
  return g;
}

RoundTrip measure_round_trip(const EmulatedNetwork& net, int a, int b, int count, int message_bytes) {
  check_nodes(net, a, b);
  if (count < 1 || message_bytes < 1 || message_bytes > (1 << 20))
    throw UserError("a round-trip measurement of " + std::to_string(count) + " x " +
                        std::to_string(message_bytes) + " bytes",
                    "give at least 1 round trip of 1 byte to 1 MiB");
  Fd client, server;
  connect_pair(net, a, b, client, server);
  const int one = 1;
  for (int fd : {client.fd, server.fd}) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const size_t n = static_cast<size_t>(message_bytes);
  const int warmup = 10, total = count + warmup;
  // Reads exactly n bytes; false on error, timeout or EOF.
  auto read_all = [n](int fd, std::vector<char>& buf) {
    for (size_t have = 0; have < n;) {
      const ssize_t got = recv(fd, buf.data() + have, n - have, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      have += static_cast<size_t>(got);
    }
    return true;
  };
  std::thread echo([&] {
    std::vector<char> buf(n);
    for (int i = 0; i < total; ++i)
      if (!read_all(server.fd, buf) || send(server.fd, buf.data(), n, MSG_NOSIGNAL) != static_cast<ssize_t>(n))
        break;
  });
  std::vector<char> buf(n, 'p');
  std::vector<double> times;
  bool ok = true;
  for (int i = 0; i < total && ok; ++i) {
    const auto t = Clock::now();
    ok = send(client.fd, buf.data(), n, MSG_NOSIGNAL) == static_cast<ssize_t>(n) && read_all(client.fd, buf);
    if (ok && i >= warmup) times.push_back(since(t));
  }
  shutdown(client.fd, SHUT_RDWR);
  echo.join();
  if (!ok) fail("a round trip between nodes " + std::to_string(a) + " and " + std::to_string(b));
  std::sort(times.begin(), times.end());
  RoundTrip r;
  r.count = static_cast<int>(times.size());
  r.min_s = times.front();
  r.max_s = times.back();
  r.median_s = times.size() % 2 ? times[times.size() / 2]
                                : (times[times.size() / 2 - 1] + times[times.size() / 2]) / 2;
  return r;
}

}  // namespace ddp::netemu
