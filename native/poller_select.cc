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
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "platform.h"
#include "poller.h"
#include "poller_thread.h"

namespace reactor {
namespace {

enum Ready : uint8_t { kReadReady = 1, kWriteReady = 2 };

struct Watched {
  int fd;
  uint32_t interest;
  uint64_t token;
  uint8_t ready;  // scan(): what select() found
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

class SelectPoller final : public Poller {
 public:
  SelectPoller()
      : thread_([this] { snapshot_ = watched_; }, [this](int wake) { return block(wake); }) {}

  bool start(std::string* error) { return thread_.start(error); }
  int highest_own_fd() const { return thread_.highest_fd(); }

  const char* name() const override { return "select"; }
  int pollable_fd() const override { return thread_.notify_fd(); }

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
    std::lock_guard<std::mutex> lock(thread_.mutex());
    if (index_.count(fd)) return -EEXIST;
    index_[fd] = watched_.size();
    watched_.push_back({fd, interest, token, 0});
    thread_.changed();
    return 0;
  }

  int modify(int fd, uint64_t token, uint32_t interest) override {
    std::lock_guard<std::mutex> lock(thread_.mutex());
    auto it = index_.find(fd);
    if (it == index_.end()) return -ENOENT;
    watched_[it->second].interest = interest;
    watched_[it->second].token = token;
    thread_.changed();
    return 0;
  }

  // The helper must not be waiting on fd when it closes (see poller_thread.h).
  int remove(int fd) override {
    int rc = detach(fd);
    thread_.quiesce();
#ifdef _WIN32
    claimed_.erase(fd);
#endif
    return rc;
  }

  // Keeps the claim: the fd comes back with add().
  int detach(int fd) override {
    std::lock_guard<std::mutex> lock(thread_.mutex());
    auto it = index_.find(fd);
    if (it == index_.end()) return -ENOENT;
    size_t at = it->second;
    index_.erase(it);
    if (at != watched_.size() - 1) {
      watched_[at] = watched_.back();
      index_[watched_[at].fd] = at;
    }
    watched_.pop_back();
    thread_.changed();
    return 0;
  }

  void commit() override { thread_.resume(); }

  int wait(PollEvent* out, int max, int timeout_ms) override {
    thread_.pause();
    return scan(out, max, timeout_ms);
  }

 private:
  int scan(PollEvent* out, int max, int timeout_ms) {
    fd_set read, write, except;
    int top = fill(watched_, &read, &write, &except);
    timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int ready = select_sets(top, &read, &write, &except, timeout_ms < 0 ? nullptr : &timeout);
#ifndef _WIN32
    if (ready == -EBADF) return report_closed(out, max);
#endif
    if (ready <= 0) return ready;
    mark(read, kReadReady);
    mark(write, kWriteReady);
#ifdef _WIN32
    mark(except, kWriteReady);
#endif
    // Start where the last scan stopped so a full batch never starves the rest.
    int n = 0;
    size_t size = watched_.size(), start = next_ % size;
    for (size_t i = 0; i < size; i++) {
      size_t at = (start + i) % size;
      Watched& w = watched_[at];
      if (!w.ready) continue;
      if (n < max) {
        PollEvent& e = out[n++];
        e.token = w.token;
        e.readable = (w.ready & kReadReady) != 0;
        e.writable = (w.ready & kWriteReady) != 0;
        e.error = 0;
        e.hangup = 0;
        e.peer_closed = 0;
        next_ = (at + 1) % size;
      }
      w.ready = 0;  // the rest are still ready at the next wait
    }
    return n;
  }

#ifdef _WIN32
  // The sets hold only what was found ready.
  void mark(const fd_set& set, uint8_t bit) {
    for (u_int i = 0; i < set.fd_count; i++) {
      auto it = index_.find(static_cast<int>(set.fd_array[i]));
      if (it != index_.end()) watched_[it->second].ready |= bit;
    }
  }

  // Winsock's select fails (WSAEINVAL) when every set is empty.
  static int select_sets(int top, fd_set* read, fd_set* write, fd_set* except, timeval* timeout) {
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
  int report_closed(PollEvent* out, int max) {
    int n = 0;
    for (const Watched& w : watched_) {
      if (n == max) break;
      if (fcntl(w.fd, F_GETFD) >= 0) continue;
      PollEvent& e = out[n++];
      e.token = w.token;
      e.readable = 0;
      e.writable = 0;
      e.error = 1;
      e.hangup = 0;
      e.peer_closed = 0;
    }
    return n;
  }

  void mark(const fd_set& set, uint8_t bit) {
    for (Watched& w : watched_) {
      if (FD_ISSET(w.fd, &set)) w.ready |= bit;
    }
  }

  // The exception set stays empty here.
  static int select_sets(int top, fd_set* read, fd_set* write, fd_set*, timeval* timeout) {
    int ready;
    do {
      ready = ::select(top, read, write, nullptr, timeout);
    } while (ready < 0 && errno == EINTR);
    return ready < 0 ? -errno : ready;
  }
#endif

  // Helper thread: the watched copy plus the wake fd.
  int block(int wake) {
    fd_set read, write, except;
    int top = fill(snapshot_, &read, &write, &except);
    put(wake, &read);
    int ready = select_sets(std::max(top, wake + 1), &read, &write, &except, nullptr);
    // A closed fd: the loop thread's scan finds it (waiting again would spin).
    if (ready == -EBADF) return 1;
    if (ready < 0) return 0;
    return ready - (FD_ISSET(native_socket(wake), &read) ? 1 : 0);
  }

  std::vector<Watched> watched_;           // dense; an fd's place found through index_
  std::unordered_map<int, size_t> index_;  // fd -> place in watched_
  size_t next_ = 0;
#ifdef _WIN32
  std::unordered_set<int> claimed_;  // fds the loop holds a place for (an fd_set's capacity)
#endif
  std::vector<Watched> snapshot_;  // the helper thread's copy
  ReadinessThread thread_;         // last: stopped before the sets above go
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
