// Watchers (watchers.cc): pipes, socket pairs, an eventfd and sockets made
// outside the loop, on the backend under test (test/native-test.mjs runs them
// once per backend). The descriptors are the test's own: each test checks
// they are still open, and usable, after the loop let go of them.
#ifndef _WIN32
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif
#endif

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "../loop.h"
#include "loop_harness.h"
#include "test_framework.h"
#include "test_sockets.h"

using namespace reactor;
using testing::backend_under_test;
using testing::Harness;
using testing::packed_of;

#ifdef _WIN32
TEST(watch_is_posix_only) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  CHECK_EQ(h.loop->watch(3, kReadable), -ENOTSUP);
}
#else
namespace {

// Closes the test's descriptors however a test ends.
struct Fds {
  std::vector<int> fds;
  ~Fds() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  int add(int fd) {
    fds.push_back(fd);
    return fd;
  }
  // Closes fd now (the test's own close, behind the loop's back if watched).
  void close_now(int fd) {
    release(fd);
    ::close(fd);
  }
  // fd is no longer the test's to close.
  void release(int fd) {
    for (int& owned : fds) {
      if (owned == fd) owned = -1;
    }
  }
};

bool make_pipe(Fds& fds, int* read_end, int* write_end) {
  int p[2];
  if (::pipe(p) != 0) return false;
  *read_end = fds.add(p[0]);
  *write_end = fds.add(p[1]);
  return true;
}

bool make_socketpair(Fds& fds, int* a, int* b) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return false;
  *a = fds.add(sv[0]);
  *b = fds.add(sv[1]);
  return true;
}

// A connected loopback TCP pair made outside the loop.
bool make_tcp_pair(Fds& fds, int* a, int* b) {
  int listener = fds.add(::socket(AF_INET, SOCK_STREAM, 0));
  if (listener < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 4) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    return false;
  }
  *a = fds.add(testing::raw_connect(ntohs(addr.sin_port)));
  *b = fds.add(::accept(listener, nullptr, nullptr));
  return *a >= 0 && *b >= 0;
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

bool is_socket(int fd) {
  int type = 0;
  socklen_t length = sizeof type;
  return ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0;
}

std::vector<Record> watch_records(const Harness& h, uint64_t id, size_t from = 0) {
  std::vector<Record> out;
  for (size_t i = from; i < h.sink.records.size(); i++) {
    const Record& r = h.sink.records[i];
    if (r.kind == kWatch && packed_of(r) == id) out.push_back(r);
  }
  return out;
}

// Whether a kWatch record of id after `from` has every bit of `flags`.
bool reported(const Harness& h, uint64_t id, int32_t flags, size_t from = 0) {
  for (const Record& r : watch_records(h, id, from)) {
    if ((r.a & flags) == flags) return true;
  }
  return false;
}

// Nothing spins: once a few wake-ups have settled (io_uring's cancellations
// complete), the backend has nothing to report for 100 ms.
bool quiet(Harness& h) {
  for (int i = 0; i < 3; i++) h.step(10);
  h.loop->prepare_wait();
  return !testing::readable_within(h.loop->pollable_fd(), 100);
}

bool backend_reports_hangups() { return backend_under_test() != "select"; }

// The fd the next socket() or accept() gets: the lowest free number.
int lowest_free_fd() {
  int fd = ::dup(0);
  if (fd >= 0) ::close(fd);
  return fd;
}

}  // namespace

TEST(watch_pipe_readable_is_level_triggered_and_the_bytes_stay_in_the_pipe) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  int r = -1, w = -1;
  REQUIRE(make_pipe(fds, &r, &w));
  int64_t id = h.loop->watch(r, kReadable);
  REQUIRE(id >= 0);
  CHECK_EQ(h.loop->live_handles(), 1u);
  h.pump_for(50);
  CHECK(watch_records(h, id).empty());  // nothing to read yet
  REQUIRE(::write(w, "ping", 4) == 4);
  CHECK(h.pump_until([&] { return reported(h, id, kWatchReadable); }));
  // Not read: reported again at the next wake-ups.
  size_t seen = watch_records(h, id).size();
  CHECK(h.pump_until([&] { return watch_records(h, id).size() >= seen + 2; }));
  for (const Record& record : watch_records(h, id)) {
    CHECK_EQ(record.a, kWatchReadable);
    CHECK_EQ(record.b, 0);
  }
  // The loop never read them (io_uring too: a poll, not a receive).
  char buffer[16];
  CHECK_EQ(::read(r, buffer, sizeof buffer), 4);
  CHECK(std::string(buffer, 4) == "ping");
  h.step(10);
  size_t drained = h.sink.records.size();
  h.pump_for(50);
  CHECK(watch_records(h, id, drained).empty());
  CHECK_EQ(h.loop->close(id), 1);
  CHECK_EQ(h.loop->live_handles(), 0u);
}

TEST(watch_writable_at_once) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  int r = -1, w = -1;
  REQUIRE(make_pipe(fds, &r, &w));
  int64_t id = h.loop->watch(w, kWritable);
  REQUIRE(id >= 0);
  CHECK(h.pump_until([&] { return reported(h, id, kWatchWritable); }));
  std::vector<Record> records = watch_records(h, id);
  CHECK_EQ(records[0].a, kWatchWritable);
  CHECK_EQ(h.loop->close(id), 1);
}

TEST(watch_update_switches_interest_and_none_stops_it) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  int a = -1, b = -1;
  REQUIRE(make_socketpair(fds, &a, &b));
  int64_t id = h.loop->watch(a, kReadable);
  REQUIRE(id >= 0);
  h.pump_for(30);
  CHECK(watch_records(h, id).empty());
  // Writable: reported at once, readable no longer asked for.
  CHECK_EQ(h.loop->watch_update(id, kWritable), 0);
  CHECK(h.loop->has_pending_changes());  // the binding runs prepare_wait() (the backend's commit)
  CHECK(h.pump_until([&] { return reported(h, id, kWatchWritable); }));
  REQUIRE(::write(b, "x", 1) == 1);
  size_t mark = h.sink.records.size();
  h.pump_for(30);
  for (const Record& record : watch_records(h, id, mark)) CHECK_EQ(record.a, kWatchWritable);
  // Nothing: stopped, and the backend reports nothing for it.
  CHECK_EQ(h.loop->watch_update(id, kNone), 0);
  h.step(10);
  mark = h.sink.records.size();
  CHECK(quiet(h));
  CHECK(watch_records(h, id, mark).empty());
  // Readable again: the byte written meanwhile.
  CHECK_EQ(h.loop->watch_update(id, kReadable), 0);
  CHECK(h.pump_until([&] { return reported(h, id, kWatchReadable, mark); }));
  for (const Record& record : watch_records(h, id, mark)) CHECK_EQ(record.a, kWatchReadable);
  CHECK_EQ(h.loop->close(id), 1);
  CHECK_EQ(h.loop->watch_update(id, kReadable), -EBADF);  // closed
}

TEST(watch_close_and_teardown_leave_the_fd_open_and_usable) {
  Fds fds;
  int a = -1, b = -1;
  REQUIRE(make_socketpair(fds, &a, &b));
  int flags_before = ::fcntl(a, F_GETFL);
  {
    Harness h;
    REQUIRE(h.loop != nullptr);
    int64_t id = h.loop->watch(a, kReadable | kWritable);
    REQUIRE(id >= 0);
    CHECK(h.pump_until([&] { return reported(h, id, kWatchWritable); }));
    CHECK_EQ(h.loop->close(id), 1);
    CHECK_EQ(h.loop->close(id), -EBADF);  // once
    CHECK(is_open(a));
    // Watched again, then left to the loop's teardown (close_all).
    REQUIRE(h.loop->watch(a, kReadable) >= 0);
    REQUIRE(h.loop->watch(b, kReadable) >= 0);
  }
  CHECK(is_open(a));
  CHECK(is_open(b));
  CHECK_EQ(::fcntl(a, F_GETFL), flags_before);  // its flags untouched
  REQUIRE(::write(b, "still here", 10) == 10);
  char buffer[16];
  CHECK_EQ(::read(a, buffer, sizeof buffer), 10);
  CHECK(std::string(buffer, 10) == "still here");
}

TEST(watch_socketpair_hangup_is_reported_once_until_update) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  int a = -1, b = -1;
  REQUIRE(make_socketpair(fds, &a, &b));
  int64_t id = h.loop->watch(a, kReadable);
  REQUIRE(id >= 0);
  REQUIRE(::write(b, "last", 4) == 4);
  fds.close_now(b);
  if (!backend_reports_hangups()) {
    // select: the end reads as readable (recv returns 0), level-triggered.
    CHECK(h.pump_until([&] { return reported(h, id, kWatchReadable); }));
    CHECK_EQ(h.loop->close(id), 1);
    return;
  }
  CHECK(h.pump_until([&] { return reported(h, id, kWatchHangup); }));
  std::vector<Record> records = watch_records(h, id);
  REQUIRE(records.size() == 1u);
  CHECK_EQ(records[0].a, kWatchReadable | kWatchHangup);
  // Ignored: reported once, and the loop does not spin on it.
  CHECK(quiet(h));
  CHECK_EQ(watch_records(h, id).size(), 1u);
  // What was sent before the hang-up is all there, then the end.
  char buffer[16];
  CHECK_EQ(::read(a, buffer, sizeof buffer), 4);
  CHECK_EQ(::read(a, buffer, sizeof buffer), 0);
  // update() asks again: reported once more.
  CHECK_EQ(h.loop->watch_update(id, kReadable), 0);
  CHECK(h.pump_until([&] { return watch_records(h, id).size() == 2u; }));
  CHECK(quiet(h));
  CHECK_EQ(watch_records(h, id).size(), 2u);
  CHECK_EQ(h.loop->close(id), 1);
}

TEST(watch_pipe_ends_hangup_and_error) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  int r = -1, w = -1;
  REQUIRE(make_pipe(fds, &r, &w));
  int64_t reader = h.loop->watch(r, kReadable);
  REQUIRE(reader >= 0);
  fds.close_now(w);  // the writer goes away
  int r2 = -1, w2 = -1;
  REQUIRE(make_pipe(fds, &r2, &w2));
  int64_t writer = h.loop->watch(w2, kWritable);
  REQUIRE(writer >= 0);
  fds.close_now(r2);  // the reader goes away
  if (!backend_reports_hangups()) {
    CHECK(h.pump_until([&] {
      return reported(h, reader, kWatchReadable) && reported(h, writer, kWatchWritable);
    }));
    return;
  }
  CHECK(h.pump_until(
      [&] { return reported(h, reader, kWatchHangup) && reported(h, writer, kWatchError); }));
  CHECK(quiet(h));
  std::vector<Record> read_side = watch_records(h, reader);
  REQUIRE(read_side.size() == 1u);
  CHECK(read_side[0].a & kWatchHangup);
  CHECK(!(read_side[0].a & kWatchError));
  std::vector<Record> write_side = watch_records(h, writer);
  REQUIRE(write_side.size() == 1u);
  CHECK(write_side[0].a & kWatchError);
  CHECK_EQ(write_side[0].b, EIO);  // not a socket: the write says EPIPE
  CHECK(is_open(r));
  CHECK(is_open(w2));
}

TEST(watch_socket_error_carries_so_error) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  int a = -1, b = -1;
  REQUIRE(make_tcp_pair(fds, &a, &b));
  int64_t id = h.loop->watch(a, kReadable);
  REQUIRE(id >= 0);
  linger reset{1, 0};
  REQUIRE(::setsockopt(b, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) == 0);
  fds.close_now(b);  // a reset
  if (!backend_reports_hangups()) {
    CHECK(h.pump_until([&] { return reported(h, id, kWatchReadable); }));
    return;
  }
  CHECK(h.pump_until([&] { return reported(h, id, kWatchError); }));
  std::vector<Record> records = watch_records(h, id);
  REQUIRE(records.size() == 1u);
  CHECK_EQ(records[0].b, ECONNRESET);
  CHECK(records[0].a & kWatchHangup);
  CHECK(quiet(h));
  CHECK_EQ(watch_records(h, id).size(), 1u);
  CHECK(is_open(a));
}

#ifdef __linux__
TEST(watch_eventfd_readable_after_a_write) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  int efd = fds.add(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  REQUIRE(efd >= 0);
  int64_t id = h.loop->watch(efd, kReadable);
  REQUIRE(id >= 0);
  h.pump_for(30);
  CHECK(watch_records(h, id).empty());
  uint64_t one = 1;
  REQUIRE(::write(efd, &one, sizeof one) == static_cast<ssize_t>(sizeof one));
  CHECK(h.pump_until([&] { return reported(h, id, kWatchReadable); }));
  uint64_t count = 0;
  CHECK_EQ(::read(efd, &count, sizeof count), static_cast<ssize_t>(sizeof count));
  CHECK_EQ(count, 1u);
  h.step(10);
  size_t mark = h.sink.records.size();
  h.pump_for(30);
  CHECK(watch_records(h, id, mark).empty());
  CHECK_EQ(h.loop->close(id), 1);
}
#endif

TEST(watch_refuses_closed_fds_and_fds_the_loop_has) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  CHECK_EQ(h.loop->watch(-1, kReadable), -EBADF);
  int closed = lowest_free_fd();
  CHECK_EQ(h.loop->watch(closed, kReadable), -EBADF);
  int a = -1, b = -1;
  REQUIRE(make_socketpair(fds, &a, &b));
  int64_t id = h.loop->watch(a, kReadable);
  REQUIRE(id >= 0);
  CHECK_EQ(h.loop->watch(a, kWritable), -EEXIST);  // watched twice
  CHECK_EQ(h.loop->adopt_connection(a), -EEXIST);  // a watched fd is not the loop's
  // The loop's own socket.
  int64_t adopted = h.loop->adopt_connection(b);
  REQUIRE(adopted >= 0);
  fds.release(b);  // the loop owns it now
  CHECK_EQ(h.loop->watch(b, kReadable), -EEXIST);
  CHECK_EQ(h.loop->live_handles(), 2u);
  CHECK_EQ(h.loop->close(id), 1);
  CHECK_EQ(h.loop->close(adopted), 1);
  CHECK(is_open(a));
  if (backend_under_test() == "epoll") {
    // epoll cannot watch a regular file: refused at once.
    char path[] = "/tmp/native-reactor-watch-XXXXXX";
    int file = fds.add(::mkstemp(path));
    REQUIRE(file >= 0);
    ::unlink(path);
    CHECK_EQ(h.loop->watch(file, kReadable), -EPERM);
    CHECK_EQ(h.loop->live_handles(), 0u);
    CHECK(is_open(file));
  }
}

TEST(watch_beyond_fd_setsize_is_refused_by_select) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  int r = -1, w = -1;
  REQUIRE(make_pipe(fds, &r, &w));
  int high = ::fcntl(r, F_DUPFD_CLOEXEC, FD_SETSIZE + 10);
  if (high < 0) return;  // the descriptor limit is below it: nothing to test
  fds.add(high);
  int64_t id = h.loop->watch(high, kReadable);
  if (backend_under_test() == "select") {
    CHECK_EQ(id, -EMFILE);
    CHECK_EQ(h.loop->live_handles(), 0u);
    return;
  }
  REQUIRE(id >= 0);
  REQUIRE(::write(w, "x", 1) == 1);
  CHECK(h.pump_until([&] { return reported(h, id, kWatchReadable); }));
}

TEST(watch_keep_alive_counts_in_live_handles) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  int a = -1, b = -1;
  REQUIRE(make_socketpair(fds, &a, &b));
  int64_t first = h.loop->watch(a, kReadable);
  int64_t second = h.loop->watch(b, kReadable);
  REQUIRE(first >= 0 && second >= 0);
  CHECK_EQ(h.loop->live_handles(), 2u);
  CHECK_EQ(h.loop->watch_keep_alive(first, false), 0);
  CHECK_EQ(h.loop->watch_keep_alive(first, false), 0);  // once
  CHECK_EQ(h.loop->live_handles(), 1u);
  CHECK_EQ(h.loop->close(first), 1);  // an unref'd one closing
  CHECK_EQ(h.loop->live_handles(), 1u);
  CHECK_EQ(h.loop->watch_keep_alive(second, false), 0);
  CHECK_EQ(h.loop->live_handles(), 0u);
  CHECK_EQ(h.loop->watch_keep_alive(second, true), 0);
  CHECK_EQ(h.loop->live_handles(), 1u);
  CHECK_EQ(h.loop->close(second), 1);
  CHECK_EQ(h.loop->live_handles(), 0u);
  CHECK_EQ(h.loop->watch_keep_alive(second, true), -EBADF);
}

// Closing a watched fd is the caller's error: where the backend shows it
// (poll's POLLNVAL, a failing select, io_uring's poll), the watcher is
// reported EBADF and gone; epoll and kqueue drop the fd silently, and
// watch_update() finds it closed. Nothing spins meanwhile.
TEST(watch_fd_closed_behind_its_back_is_reported_or_found_at_update) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  int r = -1, w = -1;
  REQUIRE(make_pipe(fds, &r, &w));
  int64_t id = h.loop->watch(r, kReadable);
  REQUIRE(id >= 0);
  fds.close_now(r);
  std::string backend = backend_under_test();
  bool shows = backend == "poll" || backend == "select" || backend == "io_uring";
  if (shows) {
    CHECK(h.pump_until([&] { return reported(h, id, kWatchClosed); }));
    std::vector<Record> records = watch_records(h, id);
    REQUIRE(records.size() == 1u);
    CHECK_EQ(records[0].a, kWatchError | kWatchClosed);
    CHECK_EQ(records[0].b, EBADF);
  } else {
    h.pump_for(50);
    CHECK(watch_records(h, id).empty());
  }
  CHECK(quiet(h));
  CHECK_EQ(h.loop->watch_update(id, kReadable), -EBADF);
  CHECK_EQ(h.loop->live_handles(), 0u);
  CHECK_EQ(h.loop->close(id), -EBADF);
}

namespace {

// The fd number of a watcher whose fd was closed behind its back comes back
// from the loop's own accept(): the stale watcher is reported EBADF and never
// touches the new socket's registration; the connection works. Closed at once
// or once watched for a while (io_uring: its poll holds the closed pipe).
void reused_by_an_accept(bool watched_for_a_while) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  // Made before the pipe takes the lowest numbers; connected once r is closed.
  int client = fds.add(::socket(AF_INET, SOCK_STREAM, 0));
  REQUIRE(client >= 0);
  int r = -1, w = -1;
  REQUIRE(make_pipe(fds, &r, &w));
  int64_t watcher = h.loop->watch(r, kReadable);
  REQUIRE(watcher >= 0);
  if (watched_for_a_while) {
    for (int i = 0; i < 3; i++) h.step(10);
  }
  fds.close_now(r);
  REQUIRE(lowest_free_fd() == r);  // the accept gets this number
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(h.local_port(listener)));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  uint64_t server = 0;
  CHECK(h.pump_until([&] {
    for (const Record& record : h.sink.records) {
      if (record.kind == kAccepted) server = packed_of(record);
    }
    return server != 0 && reported(h, watcher, kWatchClosed);
  }));
  REQUIRE(server != 0);
  CHECK(is_socket(r));  // the accepted connection has the watcher's old number
  std::vector<Record> records = watch_records(h, watcher);
  REQUIRE(records.size() == 1u);
  CHECK_EQ(records[0].a, kWatchError | kWatchClosed);
  CHECK_EQ(records[0].b, EBADF);
  CHECK_EQ(h.loop->watch_update(watcher, kReadable | kWritable), -EBADF);
  CHECK_EQ(h.loop->close(watcher), -EBADF);
  // The new connection's bytes arrive, both ways, twice over.
  for (const std::string& message : {std::string("hello"), std::string(100000, 'z')}) {
    size_t before = h.received_size(server);
    testing::send_now(client, message.data(), message.size());
    CHECK(h.pump_until([&] { return h.received_size(server) >= before + message.size(); }));
    CHECK(h.received(server).substr(before) == message);
    CHECK(h.write(server, message) >= 0);
    std::string back;
    CHECK(h.pump_until([&] {
      char buffer[65536];
      ssize_t n = testing::recv_now(client, buffer, sizeof buffer);
      if (n > 0) back.append(buffer, static_cast<size_t>(n));
      return back.size() >= message.size();
    }));
    CHECK(back == message);
  }
  CHECK_EQ(h.loop->close(server), 1);
  CHECK_EQ(h.loop->close(listener), 1);
}

}  // namespace

TEST(watch_fd_closed_behind_its_back_and_reused_by_an_accept) {
  reused_by_an_accept(false);
  reused_by_an_accept(true);
}

// The same with the loop's own socket(): a connect made from inside a call.
TEST(watch_fd_closed_behind_its_back_and_reused_by_a_connect) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Fds fds;
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  int port = h.local_port(listener);
  int r = -1, w = -1;
  REQUIRE(make_pipe(fds, &r, &w));
  int64_t watcher = h.loop->watch(r, kReadable);
  REQUIRE(watcher >= 0);
  fds.close_now(r);
  REQUIRE(lowest_free_fd() == r);
  int64_t client = h.loop->connect_tcp("127.0.0.1", port);
  REQUIRE(client >= 0);
  CHECK(is_socket(r));
  // Reported after the call, where records may be emitted.
  CHECK(watch_records(h, watcher).empty());
  CHECK(h.loop->has_pending_changes());
  CHECK(h.pump_until([&] { return h.has(kConnected, client) && h.count_kind(kAccepted) == 1; }));
  CHECK(reported(h, watcher, kWatchClosed));
  CHECK_EQ(watch_records(h, watcher).size(), 1u);
  uint64_t server = 0;
  for (const Record& record : h.sink.records) {
    if (record.kind == kAccepted) server = packed_of(record);
  }
  CHECK(h.write(client, "over the reused number") >= 0);
  CHECK(h.pump_until([&] { return h.received(server) == "over the reused number"; }));
}
#endif
