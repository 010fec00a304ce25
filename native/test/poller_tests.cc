// Backend tests: the same checks against every backend make_poller can create
// here (available_backends()), on non-blocking socket pairs (AF_UNIX
// socketpairs; loopback TCP on Windows). They pin down what the loop relies
// on: level-triggered reports, interest changes, detach, hang-ups whatever
// the interest, stale registrations never reported, and a pollable fd that
// turns readable while events wait.
#ifndef _WIN32
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/un.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "../platform.h"
#include "../poller.h"
#include "test_framework.h"
#include "test_sockets.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0  // macOS: the peer is always open where the tests send
#endif

using namespace reactor;

namespace {

struct Pair {
  int a = -1;
  int b = -1;
  Pair() {
    if (!testing::stream_pair(&a, &b)) a = b = -1;
  }
  ~Pair() {
    if (a >= 0) close_socket(a);
    if (b >= 0) close_socket(b);
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
  bool ok() const { return a >= 0 && b >= 0; }
};

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

bool send_byte(int fd) { return ::send(native_socket(fd), "x", 1, MSG_NOSIGNAL) == 1; }

void drain(int fd) {
  char buffer[4096];
  while (socket_recv(fd, buffer, sizeof buffer) > 0) {
  }
}

// One wait as the loop does it: interest changes committed, then a wait.
std::vector<PollEvent> wait_once(Poller& p, int timeout_ms, int max = 64) {
  p.commit();
  std::vector<PollEvent> events(static_cast<size_t>(max));
  int n = p.wait(events.data(), max, timeout_ms);
  events.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return events;
}

// Waits until an event for token arrives (then returns it) or timeout_ms pass.
bool wait_for(Poller& p, uint64_t token, PollEvent* out, int timeout_ms = 2000) {
  uint64_t deadline = now_ms() + static_cast<uint64_t>(timeout_ms);
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline) return false;
    for (const PollEvent& e : wait_once(p, static_cast<int>(deadline - now))) {
      if (e.token == token) {
        *out = e;
        return true;
      }
    }
  }
}

// Whether any event for token arrives within ms (several waits, so a backend
// that re-arms between waits gets its chance to report).
bool reported_within(Poller& p, uint64_t token, int ms) {
  PollEvent e;
  return wait_for(p, token, &e, ms);
}

bool fd_readable(int fd, int timeout_ms) { return testing::readable_within(fd, timeout_ms); }

// As the loop closes a connection: remove, close, and nothing else; the peer
// must see the close at once (a backend holding a reference would delay it).
void close_as_the_loop_does(const std::string& name, Poller& p, Pair& pair) {
  CHECK_EQ(p.remove(pair.a), 0);
  close_socket(pair.a);
  pair.a = -1;
  CHECK_MSG(fd_readable(pair.b, 1000), name << ": the peer saw no close");
  char c;
  CHECK_EQ(socket_recv(pair.b, &c, 1), 0);
}

// Runs check on a fresh poller of every available backend.
template <typename Check>
// The backend named by $NATIVE_REACTOR_BACKEND (test/native-test.mjs runs the
// binary once per backend), else every available one.
void for_each_backend(Check check) {
  std::vector<std::string> names = available_backends();
  CHECK(!names.empty());
  const char* only = std::getenv("NATIVE_REACTOR_BACKEND");
  if (only && *only) names = {only};
  for (const std::string& name : names) {
    std::string error;
    std::unique_ptr<Poller> poller = make_poller(name, &error);
    CHECK_MSG(poller != nullptr, name << ": " << error);
    if (!poller) continue;
    CHECK_EQ(std::string(poller->name()), name);
    check(name, *poller);
  }
}

}  // namespace

TEST(poller_backends_listed) {
  std::vector<std::string> names = available_backends();
  REQUIRE(!names.empty());
  std::string error;
  // The platform's default first; io_uring is opt-in: auto is never it.
  std::unique_ptr<Poller> automatic = make_poller("auto", &error);
  REQUIRE(automatic != nullptr);
  CHECK_EQ(std::string(automatic->name()), names[0]);
#ifdef __linux__
  CHECK_EQ(names[0], std::string("epoll"));
#endif
#ifdef _WIN32
  CHECK(names == std::vector<std::string>{"select"});
#endif
#ifndef NATIVE_REACTOR_IO_URING
  CHECK(make_poller("io_uring", &error) == nullptr);
  CHECK_EQ(error, std::string("ERR_REACTOR_BACKEND_UNAVAILABLE"));
#endif
}

TEST(poller_readable_after_write) {
  for_each_backend([](const std::string& name, Poller& p) {
    Pair pair;
    REQUIRE(pair.ok());
    REQUIRE(p.add(pair.a, 7, kReadable) == 0);
    CHECK_MSG(!reported_within(p, 7, 50), name << ": reported before any write");
    REQUIRE(send_byte(pair.b));
    PollEvent e{};
    CHECK_MSG(wait_for(p, 7, &e), name);
    CHECK_MSG(e.readable && !e.writable && !e.hangup && !e.error, name);
    CHECK_EQ(p.remove(pair.a), 0);
  });
}

TEST(poller_level_triggered) {
  for_each_backend([](const std::string& name, Poller& p) {
    Pair pair;
    REQUIRE(pair.ok());
    REQUIRE(p.add(pair.a, 3, kReadable) == 0);
    REQUIRE(send_byte(pair.b));
    // Not drained: reported at every wait.
    for (int i = 0; i < 5; i++) {
      PollEvent e{};
      CHECK_MSG(wait_for(p, 3, &e, 1000) && e.readable, name << ": round " << i);
    }
    // Partly read: the rest is still reported.
    REQUIRE(send_byte(pair.b));
    char c;
    CHECK_EQ(socket_recv(pair.a, &c, 1), 1);
    CHECK_MSG(reported_within(p, 3, 1000), name << ": after a partial read");
    drain(pair.a);
    // Drained: no longer reported (one wait may still carry the old state).
    wait_once(p, 0);
    CHECK_MSG(!reported_within(p, 3, 100), name << ": reported after draining");
    p.remove(pair.a);
  });
}

TEST(poller_writable) {
  for_each_backend([](const std::string& name, Poller& p) {
    Pair pair;
    REQUIRE(pair.ok());
    REQUIRE(p.add(pair.a, 11, kWritable) == 0);
    PollEvent e{};
    CHECK_MSG(wait_for(p, 11, &e), name);
    CHECK_MSG(e.writable && !e.readable, name);
    // Still writable: still reported.
    CHECK_MSG(reported_within(p, 11, 1000), name);
    p.remove(pair.a);
  });
}

TEST(poller_modify_changes_reports) {
  for_each_backend([](const std::string& name, Poller& p) {
    Pair pair;
    REQUIRE(pair.ok());
    REQUIRE(send_byte(pair.b));
    REQUIRE(p.add(pair.a, 5, kReadable) == 0);
    PollEvent e{};
    CHECK_MSG(wait_for(p, 5, &e) && e.readable && !e.writable, name);
    REQUIRE(p.modify(pair.a, 5, kWritable) == 0);
    for (int i = 0; i < 3; i++) {
      CHECK_MSG(wait_for(p, 5, &e) && e.writable && !e.readable, name << ": round " << i);
    }
    REQUIRE(p.modify(pair.a, 5, kReadable | kWritable) == 0);
    CHECK_MSG(wait_for(p, 5, &e) && e.writable && e.readable, name);
    // No interest: nothing to say about a readable, writable socket.
    REQUIRE(p.modify(pair.a, 5, kNone) == 0);
    wait_once(p, 0);
    CHECK_MSG(!reported_within(p, 5, 100), name << ": reported with no interest");
    // A new token is what later events carry.
    REQUIRE(p.modify(pair.a, 6, kReadable) == 0);
    CHECK_MSG(wait_for(p, 6, &e) && e.readable, name);
    CHECK_MSG(!reported_within(p, 5, 50), name << ": the old token came back");
    p.remove(pair.a);
  });
}

TEST(poller_detach_and_add_again) {
  for_each_backend([](const std::string& name, Poller& p) {
    Pair pair;
    REQUIRE(pair.ok());
    REQUIRE(send_byte(pair.b));
    REQUIRE(p.add(pair.a, 9, kReadable) == 0);
    CHECK_MSG(reported_within(p, 9, 1000), name);
    CHECK_EQ(p.detach(pair.a), 0);
    CHECK_MSG(!reported_within(p, 9, 100), name << ": reported while detached");
    // Even a hang-up is not reported while detached.
    testing::shutdown_both(pair.b);
    CHECK_MSG(!reported_within(p, 9, 100), name << ": hang-up reported while detached");
    REQUIRE(p.add(pair.a, 10, kReadable) == 0);
    PollEvent e{};
    CHECK_MSG(wait_for(p, 10, &e) && e.readable, name);
    CHECK_MSG(!reported_within(p, 9, 50), name << ": the detached token came back");
    p.remove(pair.a);
  });
}

TEST(poller_peer_closed_and_hangup) {
  for_each_backend([](const std::string& name, Poller& p) {
    if (!p.reports_peer_closed()) {
      // select: no peer-closed, error or hang-up conditions at all; an EOF
      // or a reset shows only as readable, and only to read interest.
      Pair pair;
      REQUIRE(pair.ok());
      REQUIRE(p.add(pair.a, 4, kPeerClosed) == 0);
      close_socket(pair.b);
      pair.b = -1;
      CHECK_MSG(!reported_within(p, 4, 100), name << ": reported without read interest");
      REQUIRE(p.modify(pair.a, 4, kReadable) == 0);
      PollEvent e{};
      CHECK_MSG(wait_for(p, 4, &e) && e.readable, name << ": EOF not readable");
      p.remove(pair.a);
      return;
    }
    {
      // A parked connection: only the peer's FIN is of interest.
      Pair pair;
      REQUIRE(pair.ok());
      REQUIRE(p.add(pair.a, 1, kPeerClosed) == 0);
      REQUIRE(send_byte(pair.b));
      CHECK_MSG(!reported_within(p, 1, 100), name << ": data reported to kPeerClosed");
      shutdown_write(pair.b);
      PollEvent e{};
      CHECK_MSG(wait_for(p, 1, &e) && e.peer_closed && !e.hangup, name);
      p.remove(pair.a);
    }
    {
      // The peer shut its write side and nothing is asked for: silence (no
      // spinning on a condition nobody wants), until both directions end.
      Pair pair;
      REQUIRE(pair.ok());
      REQUIRE(p.add(pair.a, 2, kNone) == 0);
      shutdown_write(pair.b);
      CHECK_MSG(!reported_within(p, 2, 100), name << ": half-close reported to kNone");
      for (int i = 0; i < 10; i++) CHECK_MSG(wait_once(p, 0).empty(), name << ": spins");
      // As the loop does before it blocks in libuv on the pollable fd.
      p.commit();
      CHECK_MSG(!fd_readable(p.pollable_fd(), 50), name << ": pollable fd stays readable");
      close_socket(pair.b);
      pair.b = -1;
      PollEvent e{};
      CHECK_MSG(wait_for(p, 2, &e) && e.hangup, name << ": hang-up not reported to kNone");
      CHECK_MSG(!e.peer_closed && !e.readable, name);
      p.remove(pair.a);
    }
    {
      // Reading: the close shows as readable (EOF), peer_closed and hang-up.
      Pair pair;
      REQUIRE(pair.ok());
      REQUIRE(p.add(pair.a, 3, kReadable | kPeerClosed) == 0);
      close_socket(pair.b);
      pair.b = -1;
      PollEvent e{};
      CHECK_MSG(wait_for(p, 3, &e) && e.readable && e.peer_closed && e.hangup, name);
      // A hang-up stays: level-triggered, it is reported again.
      CHECK_MSG(wait_for(p, 3, &e) && e.hangup, name);
      p.remove(pair.a);
    }
  });
}

TEST(poller_many_fds) {
#ifndef _WIN32  // Windows has no descriptor limit to raise
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 2048) {
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 4096);
    setrlimit(RLIMIT_NOFILE, &limit);
  }
#endif
  for_each_backend([](const std::string& name, Poller& p) {
    constexpr int kCount = 500;
    std::vector<std::unique_ptr<Pair>> pairs;
    for (int i = 0; i < kCount; i++) {
      pairs.push_back(std::make_unique<Pair>());
      REQUIRE(pairs.back()->ok());
      REQUIRE(p.add(pairs.back()->a, 1000 + i, kReadable) == 0);
    }
    for (auto& pair : pairs) REQUIRE(send_byte(pair->b));
    // Fewer slots than ready fds: the rest come at the next waits.
    std::set<uint64_t> seen;
    uint64_t deadline = now_ms() + 5000;
    while (seen.size() < kCount && now_ms() < deadline) {
      for (const PollEvent& e : wait_once(p, 100, 64)) {
        CHECK(e.readable);
        if (e.token >= 1000 && e.token < 1000 + kCount) {
          seen.insert(e.token);
          drain(pairs[e.token - 1000]->a);
        }
      }
    }
    CHECK_MSG(seen.size() == kCount, name << ": " << seen.size() << " of " << kCount);
    for (auto& pair : pairs) p.remove(pair->a);
  });
}

TEST(poller_full_batches_take_turns) {
  // 40 fds stay readable (never drained) and each wait takes 16 events: the
  // ones past the first batch must come at the next waits, not be starved by
  // the same first 16 every time.
  for_each_backend([](const std::string& name, Poller& p) {
    constexpr int kCount = 40;
    constexpr int kBatch = 16;
    std::vector<std::unique_ptr<Pair>> pairs;
    for (int i = 0; i < kCount; i++) {
      pairs.push_back(std::make_unique<Pair>());
      REQUIRE(pairs.back()->ok());
      REQUIRE(p.add(pairs.back()->a, 1000 + i, kReadable) == 0);
      REQUIRE(send_byte(pairs.back()->b));
    }
    std::set<uint64_t> seen;
    int waits = 0;
    for (; waits < 10 && seen.size() < kCount; waits++) {
      for (const PollEvent& e : wait_once(p, 1000, kBatch)) seen.insert(e.token);
    }
    CHECK_MSG(seen.size() == kCount,
              name << ": " << seen.size() << " of " << kCount << " in " << waits << " waits");
    for (auto& pair : pairs) p.remove(pair->a);
  });
}

TEST(poller_pollable_fd_readable_when_pending) {
  for_each_backend([](const std::string& name, Poller& p) {
    Pair pair;
    REQUIRE(pair.ok());
    REQUIRE(p.add(pair.a, 4, kReadable) == 0);
    p.commit();
    CHECK_MSG(!fd_readable(p.pollable_fd(), 0), name << ": readable with nothing pending");
    REQUIRE(send_byte(pair.b));
    CHECK_MSG(fd_readable(p.pollable_fd(), 1000), name << ": not readable with an event pending");
    PollEvent e{};
    CHECK_MSG(wait_for(p, 4, &e) && e.readable, name);
    drain(pair.a);
    wait_once(p, 0);
    p.commit();
    CHECK_MSG(!fd_readable(p.pollable_fd(), 50), name << ": still readable once handled");
    p.remove(pair.a);
  });
}

TEST(poller_remove_then_close_releases_the_socket) {
  for_each_backend([](const std::string& name, Poller& p) {
    Pair pair;
    REQUIRE(pair.ok());
    REQUIRE(p.add(pair.a, 8, kReadable) == 0);
    wait_once(p, 0);
    close_as_the_loop_does(name, p, pair);
  });
}

TEST(poller_stale_registration_never_reported) {
  for_each_backend([](const std::string& name, Poller& p) {
    auto first = std::make_unique<Pair>();
    REQUIRE(first->ok());
    int fd = first->a;
    REQUIRE(p.add(fd, 21, kReadable) == 0);
    REQUIRE(send_byte(first->b));
    wait_once(p, 0);  // may or may not have reported it; leave it unhandled
    p.remove(fd);
    first.reset();
    // The same fd number, a new socket and token.
    Pair second;
    REQUIRE(second.ok());
#ifndef _WIN32
    // POSIX hands out the lowest free number; Windows promises no reuse, so
    // there the test is only about a new socket and token.
    CHECK_MSG(second.a == fd || second.b == fd, name << ": fd not reused, test is weaker");
#endif
    int reused = second.b == fd ? second.b : second.a;
    int other = reused == second.a ? second.b : second.a;
    REQUIRE(p.add(reused, 22, kReadable) == 0);
    CHECK_MSG(!reported_within(p, 21, 100), name << ": stale token reported");
    CHECK_MSG(!reported_within(p, 22, 50), name << ": new socket reported before any write");
    REQUIRE(send_byte(other));
    CHECK_MSG(reported_within(p, 22, 1000), name);
    p.remove(reused);
  });
}

TEST(poller_wait_honours_timeout) {
  for_each_backend([](const std::string& name, Poller& p) {
    Pair pair;
    REQUIRE(pair.ok());
    REQUIRE(p.add(pair.a, 1, kReadable) == 0);
    uint64_t start = now_ms();
    CHECK_MSG(wait_once(p, 100).empty(), name);
    uint64_t spent = now_ms() - start;
    CHECK_MSG(spent >= 90 && spent < 1000, name << ": waited " << spent << " ms");
    CHECK_EQ(p.detach(pair.a), 0);
    CHECK_MSG(p.detach(pair.a) < 0, name << ": detached twice");
    CHECK_MSG(p.modify(pair.a, 1, kReadable) < 0, name << ": modified while not watched");
    REQUIRE(p.add(pair.a, 1, kReadable) == 0);
    CHECK_MSG(p.add(pair.a, 1, kReadable) < 0, name << ": added twice");
    p.remove(pair.a);
  });
}

// select's ceiling is the fd_set's capacity: fd values below FD_SETSIZE on
// POSIX, a count of sockets on Windows (FD_SETSIZE there is set in
// poller_select.cc). claim() only counts, so made-up fd numbers do.
TEST(poller_select_claims_only_what_an_fd_set_holds) {
  std::string error;
  std::unique_ptr<Poller> p = make_poller("select", &error);
  REQUIRE(p != nullptr);
  CHECK(!p->claim(-1));
#ifdef _WIN32
  constexpr int kCapacity = 1023;  // one place is the helper's wake socket
  for (int fd = 0; fd < kCapacity; fd++) REQUIRE(p->claim(100000 + 4 * fd));
  CHECK(p->claim(100000));  // claimed already
  CHECK(!p->claim(4));
  CHECK_EQ(p->add(4, 1, kReadable), -EMFILE);
  p->remove(100000);  // a place frees
  CHECK(p->claim(4));
  CHECK(!p->claim(8));
#else
  CHECK(p->claim(FD_SETSIZE - 1));
  CHECK(!p->claim(FD_SETSIZE));
  CHECK_EQ(p->add(FD_SETSIZE, 1, kReadable), -EMFILE);
#endif
}

// Completions (Poller::receives(): io_uring's multishot recv and accept);
// elsewhere the same checks on readiness.

TEST(poller_receive_reports_bytes_then_the_end) {
  for_each_backend([](const std::string& name, Poller& p) {
    Pair pair;
    REQUIRE(pair.ok());
    bool completes = p.receives();
    REQUIRE(p.add(pair.a, 31, completes ? kReceive : kReadable) == 0);
    p.commit();
    REQUIRE(::send(native_socket(pair.b), "hello", 5, MSG_NOSIGNAL) == 5);
    PollEvent e;
    REQUIRE(wait_for(p, 31, &e));
    std::string got;
    if (completes) {
      CHECK_MSG(e.completion == kReceived, name);
      CHECK_EQ(e.result, 5);
      if (e.result > 0 && e.data) got.assign(reinterpret_cast<const char*>(e.data), 5);
    } else {
      CHECK_MSG(e.completion == kNoCompletion && e.readable, name);
      char buffer[16];
      got.assign(buffer, static_cast<size_t>(socket_recv(pair.a, buffer, sizeof buffer)));
    }
    CHECK_EQ(got, std::string("hello"));
    shutdown_write(pair.b);
    REQUIRE(wait_for(p, 31, &e));
    if (completes) {
      CHECK_MSG(e.completion == kReceived && e.result == 0, name << ": end of stream");
      CHECK_MSG(!reported_within(p, 31, 100), name << ": a recv that ended is not armed again");
    } else {
      char c;
      CHECK_EQ(socket_recv(pair.a, &c, 1), 0);
    }
    p.remove(pair.a);
  });
}

TEST(poller_receive_remove_then_close_releases_the_socket) {
  for_each_backend([](const std::string& name, Poller& p) {
    Pair pair;
    REQUIRE(pair.ok());
    REQUIRE(p.add(pair.a, 32, p.receives() ? kReceive | kWritable : kReadable) == 0);
    wait_once(p, 0);
    close_as_the_loop_does(name, p, pair);
  });
}

#ifndef _WIN32  // on a Unix-domain listener
TEST(poller_accept_reports_connections) {
  for_each_backend([](const std::string& name, Poller& p) {
    int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(listener >= 0);
    ::fcntl(listener, F_SETFL, ::fcntl(listener, F_GETFL) | O_NONBLOCK);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::string path = "/tmp/native-reactor-poller-" + std::to_string(getpid()) + ".sock";
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    ::unlink(path.c_str());
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener, 16) == 0);
    bool completes = p.receives();
    REQUIRE(p.add(listener, 33, completes ? kAccept : kReadable) == 0);
    p.commit();
    std::vector<int> clients;
    for (int i = 0; i < 3; i++) {
      int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      REQUIRE(fd >= 0);
      REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
      clients.push_back(fd);
    }
    int accepted = 0;
    uint64_t deadline = now_ms() + 2000;
    while (accepted < 3 && now_ms() < deadline) {
      for (const PollEvent& e : wait_once(p, 50)) {
        if (e.token != 33) continue;
        if (completes) {
          CHECK_MSG(e.completion == kAcceptedFd && e.result >= 0, name);
          if (e.result >= 0) {
            CHECK(::fcntl(e.result, F_GETFL) & O_NONBLOCK);
            CHECK(::fcntl(e.result, F_GETFD) & FD_CLOEXEC);
            ::close(e.result);
            accepted++;
          }
        } else {
          for (int fd; (fd = ::accept(listener, nullptr, nullptr)) >= 0;) {
            ::close(fd);
            accepted++;
          }
        }
      }
    }
    CHECK_EQ(accepted, 3);
    p.remove(listener);
    ::close(listener);
    ::unlink(path.c_str());
    for (int fd : clients) ::close(fd);
  });
}
#endif
