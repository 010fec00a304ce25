// select backend (the portable fallback of last resort). An fd_set holds fds
// below FD_SETSIZE only; writing a larger fd into one corrupts memory, so
// can_watch() refuses them and the loop turns such sockets away cleanly.
// select has no error, hang-up or peer-closed conditions of its own: a socket
// error or an EOF shows as readable (and writable), which the loop's read and
// connect paths already decode; there is no kPeerClosed (the loop watches
// parked connections for readability and peeks instead). Its wait is not a
// pollable fd: a ReadinessThread provides one.
#include <sys/select.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <vector>

#include "poller.h"
#include "poller_thread.h"

namespace reactor {
namespace {

struct Watched {
  uint32_t interest = kNone;
  uint64_t token = 0;
  bool present = false;
};

// The sets select() needs for `watched`; returns the highest fd + 1.
int fill(const std::vector<Watched>& watched, fd_set* read, fd_set* write) {
  FD_ZERO(read);
  FD_ZERO(write);
  int top = 0;
  for (size_t fd = 0; fd < watched.size(); fd++) {
    const Watched& w = watched[fd];
    if (!w.present) continue;
    if (w.interest & kReadable) FD_SET(static_cast<int>(fd), read);
    if (w.interest & kWritable) FD_SET(static_cast<int>(fd), write);
    if (w.interest & (kReadable | kWritable)) top = static_cast<int>(fd) + 1;
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
  bool can_watch(int fd) const override { return fd >= 0 && fd < FD_SETSIZE; }

  int add(int fd, uint64_t token, uint32_t interest) override {
    if (!can_watch(fd)) return -EMFILE;
    std::lock_guard<std::mutex> lock(thread_.mutex());
    if (static_cast<size_t>(fd) >= watched_.size()) watched_.resize(fd + 1);
    if (watched_[fd].present) return -EEXIST;
    watched_[fd] = {interest, token, true};
    thread_.changed();
    return 0;
  }

  int modify(int fd, uint64_t token, uint32_t interest) override {
    std::lock_guard<std::mutex> lock(thread_.mutex());
    if (fd < 0 || static_cast<size_t>(fd) >= watched_.size() || !watched_[fd].present) {
      return -ENOENT;
    }
    watched_[fd] = {interest, token, true};
    thread_.changed();
    return 0;
  }

  // The helper must not be waiting on fd when it closes (see poller_thread.h).
  int remove(int fd) override {
    int rc = detach(fd);
    thread_.quiesce();
    return rc;
  }

  int detach(int fd) override {
    std::lock_guard<std::mutex> lock(thread_.mutex());
    if (fd < 0 || static_cast<size_t>(fd) >= watched_.size() || !watched_[fd].present) {
      return -ENOENT;
    }
    watched_[fd] = Watched{};
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
    fd_set read, write;
    int top = fill(watched_, &read, &write);
    timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int ready;
    do {
      ready = ::select(top, &read, &write, nullptr, timeout_ms < 0 ? nullptr : &timeout);
    } while (ready < 0 && errno == EINTR);
    if (ready <= 0) return ready < 0 ? -errno : 0;
    // Start where the last scan stopped so a full batch never starves the rest.
    int n = 0, start = next_ % top;
    for (int i = 0; i < top && n < max; i++) {
      int fd = (start + i) % top;
      bool readable = FD_ISSET(fd, &read), writable = FD_ISSET(fd, &write);
      if (!readable && !writable) continue;
      PollEvent& e = out[n++];
      e.token = watched_[fd].token;
      e.readable = readable;
      e.writable = writable;
      e.error = 0;
      e.hangup = 0;
      e.peer_closed = 0;
      next_ = (fd + 1) % top;
    }
    return n;
  }

  // Helper thread: the watched copy plus the wake pipe.
  int block(int wake) {
    fd_set read, write;
    int top = fill(snapshot_, &read, &write);
    FD_SET(wake, &read);
    int ready;
    do {
      ready = ::select(std::max(top, wake + 1), &read, &write, nullptr, nullptr);
    } while (ready < 0 && errno == EINTR);
    if (ready < 0) return 0;
    return ready - (FD_ISSET(wake, &read) ? 1 : 0);
  }

  std::vector<Watched> watched_;  // by fd
  int next_ = 0;
  std::vector<Watched> snapshot_;  // the helper thread's copy
  ReadinessThread thread_;         // last: stopped before the sets above go
};

}  // namespace

std::unique_ptr<Poller> make_select_poller(std::string* error) {
  auto poller = std::make_unique<SelectPoller>();
  if (!poller->start(error)) return nullptr;
  // The wake pipe goes into an fd_set too.
  if (poller->highest_own_fd() >= FD_SETSIZE) {
    *error = "ERR_REACTOR_BACKEND_UNAVAILABLE";
    return nullptr;
  }
  return poller;
}

}  // namespace reactor
