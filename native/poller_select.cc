// select backend (the portable fallback; Winsock's select on Windows). An
// fd_set has a fixed capacity, and going past it corrupts memory, so claim()
// refuses what would not fit and the loop turns such sockets away cleanly:
// - POSIX: a bitmap indexed by fd value, so only fds below FD_SETSIZE;
// - Windows: an array of FD_SETSIZE sockets whatever their handle values, so
//   at most kCapacity sockets at once (one place is the helper's wake socket).
// select has no error, hang-up or peer-closed conditions of its own: a socket
// error or an EOF shows as readable (and writable), which the loop's read and
// connect paths already decode; there is no kPeerClosed (the loop watches
// parked connections for readability and peeks instead). Its wait is not a
// pollable fd: a ReadinessThread provides one.
//
// A watched fd closed by its owner (a watcher's: the loop closes its own only
// after remove()) fails the whole select with EBADF, naming none: the closed
// ones are found and reported with `error`, as poll reports POLLNVAL, so the
// loop lets go of them instead of every wait failing.
#ifdef _WIN32
// Winsock's default is 64 sockets; it must be set before winsock2.h.
#define FD_SETSIZE 1024
#include <unordered_set>
#else
#include <fcntl.h>
#include <sys/select.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include "platform.h"
#include "poller.h"
#include "watched_set.h"

namespace reactor {
namespace {

enum Ready : uint8_t { kReadReady = 1, kWriteReady = 2 };

struct Watched {
  int fd;
  uint32_t interest;
  uint8_t ready;  // wait(): what select() found
};

#ifdef _WIN32
constexpr size_t kCapacity = FD_SETSIZE - 1;

// Windows' fd_set is a counted array; FD_SET would search it for duplicates
// on every insertion.
void put(int fd, fd_set* set) { set->fd_array[set->fd_count++] = native_socket(fd); }
#else
void put(int fd, fd_set* set) { FD_SET(fd, set); }
#endif

// The sets select() needs for `watched`; returns the highest fd + 1 (POSIX)
// or whether any set is non-empty (Windows, where an empty call fails).
// Windows reports a failed connect in the exception set only: it is read as
// writable, as POSIX's select reports it.
int fill(const std::vector<Watched>& watched, fd_set* read, fd_set* write, fd_set* except) {
  FD_ZERO(read);
  FD_ZERO(write);
  FD_ZERO(except);
  int top = 0;
  for (const Watched& w : watched) {
    if (w.interest & kReadable) put(w.fd, read);
    if (w.interest & kWritable) {
      put(w.fd, write);
#ifdef _WIN32
      put(w.fd, except);
#endif
    }
    if (w.interest & (kReadable | kWritable)) top = std::max(top, w.fd + 1);
  }
  return top;
}

// What select() found for one fd, if anything.
bool to_event(const Watched& watched, PollEvent* e) {
  if (!watched.ready) return false;
  e->readable = (watched.ready & kReadReady) != 0;
  e->writable = (watched.ready & kWriteReady) != 0;
  e->error = 0;
  e->hangup = 0;
  e->peer_closed = 0;
  return true;
}

#ifdef _WIN32
// Winsock's select fails (WSAEINVAL) when every set is empty.
int select_sets(int top, fd_set* read, fd_set* write, fd_set* except, timeval* timeout) {
  if (top == 0) {
    if (timeout) {
      std::this_thread::sleep_for(std::chrono::seconds(timeout->tv_sec) +
                                  std::chrono::microseconds(timeout->tv_usec));
    }
    return 0;
  }
  int ready = ::select(0, read, write, except, timeout);
  return ready < 0 ? -socket_error() : ready;
}
#else
// The exception set stays empty here.
int select_sets(int top, fd_set* read, fd_set* write, fd_set*, timeval* timeout) {
  int ready;
  do {
    ready = ::select(top, read, write, nullptr, timeout);
  } while (ready < 0 && errno == EINTR);
  return ready < 0 ? -errno : ready;
}
#endif

// Helper thread: the watched copy plus the wake fd.
int block(std::vector<Watched>& snapshot, int wake) {
  fd_set read, write, except;
  int top = fill(snapshot, &read, &write, &except);
  put(wake, &read);
  int ready = select_sets(std::max(top, wake + 1), &read, &write, &except, nullptr);
  // A closed fd: the loop thread's scan finds it (waiting again would spin).
  if (ready == -EBADF) return 1;
  if (ready < 0) return 0;
  return ready - (FD_ISSET(native_socket(wake), &read) ? 1 : 0);
}

class SelectPoller final : public Poller {
 public:
  SelectPoller() : watched_(block) {}

  bool start(std::string* error) { return watched_.start(error); }
  int highest_own_fd() const { return watched_.highest_own_fd(); }

  const char* name() const override { return "select"; }
  int pollable_fd() const override { return watched_.notify_fd(); }

#ifdef _WIN32
  // Only the loop thread claims and releases, so no lock.
  bool claim(int fd) override {
    if (fd < 0) return false;
    if (claimed_.count(fd)) return true;
    if (claimed_.size() >= kCapacity) return false;
    claimed_.insert(fd);
    return true;
  }
#else
  bool claim(int fd) override { return fd >= 0 && fd < FD_SETSIZE; }
#endif

  int add(int fd, uint64_t token, uint32_t interest) override {
    if (!claim(fd)) return -EMFILE;
    return watched_.add({fd, interest, 0}, token);
  }

  int modify(int fd, uint64_t token, uint32_t interest) override {
    return watched_.modify({fd, interest, 0}, token);
  }

  int remove(int fd) override {
    int rc = watched_.remove(fd);
#ifdef _WIN32
    claimed_.erase(fd);
#endif
    return rc;
  }

  // Keeps the claim: the fd comes back with add().
  int detach(int fd) override { return watched_.detach(fd); }

  void commit() override { watched_.resume(); }

  int wait(PollEvent* out, int max, int timeout_ms) override {
    auto lock = watched_.pause();
    std::vector<Watched>& watched = watched_.records();
    fd_set read, write, except;
    int top = fill(watched, &read, &write, &except);
    timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int ready = select_sets(top, &read, &write, &except, timeout_ms < 0 ? nullptr : &timeout);
#ifndef _WIN32
    if (ready == -EBADF) return report_closed(out, max);
#endif
    if (ready <= 0) return ready;
    // What was found and left unreported by a full batch is found again.
    for (Watched& w : watched) w.ready = 0;
    mark(read, kReadReady);
    mark(write, kWriteReady);
#ifdef _WIN32
    mark(except, kWriteReady);
#endif
    return watched_.collect(out, max, to_event);
  }

 private:
#ifdef _WIN32
  // The sets hold only what was found ready.
  void mark(const fd_set& set, uint8_t bit) {
    for (u_int i = 0; i < set.fd_count; i++) {
      Watched* w = watched_.find(static_cast<int>(set.fd_array[i]));
      if (w) w->ready |= bit;
    }
  }
#else
  // select() fails as a whole when a watched fd was closed (behind a
  // watcher's back): those fds are reported as errors, which stops them.
  int report_closed(PollEvent* out, int max) {
    return watched_.collect(out, max, [](const Watched& w, PollEvent* e) {
      if (fcntl(w.fd, F_GETFD) >= 0) return false;
      e->readable = 0;
      e->writable = 0;
      e->error = 1;
      e->hangup = 0;
      e->peer_closed = 0;
      return true;
    });
  }

  void mark(const fd_set& set, uint8_t bit) {
    for (Watched& w : watched_.records()) {
      if (FD_ISSET(w.fd, &set)) w.ready |= bit;
    }
  }
#endif

#ifdef _WIN32
  std::unordered_set<int> claimed_;  // fds the loop holds a place for (an fd_set's capacity)
#endif
  WatchedSet<Watched> watched_;
};

}  // namespace

std::unique_ptr<Poller> make_select_poller(std::string* error) {
  auto poller = std::make_unique<SelectPoller>();
  if (!poller->start(error)) return nullptr;
#ifndef _WIN32
  // The wake pipe goes into an fd_set too. Past FD_SETSIZE the table is full
  // as select sees it: EMFILE, as for a connect there.
  if (poller->highest_own_fd() >= FD_SETSIZE) {
    *error = "EMFILE";
    return nullptr;
  }
#endif
  return poller;
}

}  // namespace reactor
