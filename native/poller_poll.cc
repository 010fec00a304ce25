// poll backend (POSIX fallback). poll() is level-triggered and takes the whole
// set on every call, so the set is one pollfd array (watched_set.h). Its wait
// is not a pollable fd: a ReadinessThread provides one.
#include <poll.h>

#include <cerrno>
#include <vector>

#include "poller.h"
#include "watched_set.h"

namespace reactor {
namespace {

pollfd to_pollfd(int fd, uint32_t interest) {
  short events = 0;
  if (interest & kReadable) events |= POLLIN;
  if (interest & kWritable) events |= POLLOUT;
#ifdef POLLRDHUP
  if (interest & kPeerClosed) events |= POLLRDHUP;
#endif
  return {fd, events, 0};
}

// What poll() found for one fd, if anything.
bool to_event(const pollfd& watched, PollEvent* e) {
  short revents = watched.revents;
  if (revents == 0) return false;
  e->readable = (revents & (POLLIN | POLLPRI)) != 0;
  e->writable = (revents & POLLOUT) != 0;
  e->error = (revents & (POLLERR | POLLNVAL)) != 0;
  e->hangup = (revents & POLLHUP) != 0;
#ifdef POLLRDHUP
  e->peer_closed = (revents & POLLRDHUP) != 0;
#else
  e->peer_closed = 0;
#endif
  return true;
}

int poll_all(std::vector<pollfd>& fds, int timeout_ms) {
  int ready;
  do {
    ready = ::poll(fds.data(), fds.size(), timeout_ms);
  } while (ready < 0 && errno == EINTR);
  return ready < 0 ? -errno : ready;
}

// Helper thread: the watched copy plus the wake pipe.
int block(std::vector<pollfd>& snapshot, int wake) {
  snapshot.push_back({wake, POLLIN, 0});
  int ready = poll_all(snapshot, -1);
  bool woken = snapshot.back().revents != 0;
  snapshot.pop_back();
  if (ready < 0) return 0;
  return ready - (woken ? 1 : 0);
}

class PollPoller final : public Poller {
 public:
  PollPoller() : watched_(block) {}

  bool start(std::string* error) { return watched_.start(error); }

  const char* name() const override { return "poll"; }
  int pollable_fd() const override { return watched_.notify_fd(); }
#ifdef POLLRDHUP
  bool reports_peer_closed() const override { return true; }
#endif

  int add(int fd, uint64_t token, uint32_t interest) override {
    return watched_.add(to_pollfd(fd, interest), token);
  }
  int modify(int fd, uint64_t token, uint32_t interest) override {
    return watched_.modify(to_pollfd(fd, interest), token);
  }
  int remove(int fd) override { return watched_.remove(fd); }
  int detach(int fd) override { return watched_.detach(fd); }
  void commit() override { watched_.resume(); }

  int wait(PollEvent* out, int max, int timeout_ms) override {
    auto lock = watched_.pause();
    int ready = poll_all(watched_.records(), timeout_ms);
    if (ready <= 0) return ready;
    return watched_.collect(out, max, to_event);
  }

 private:
  WatchedSet<pollfd> watched_;
};

}  // namespace

std::unique_ptr<Poller> make_poll_poller(std::string* error) {
  auto poller = std::make_unique<PollPoller>();
  if (!poller->start(error)) return nullptr;
  return poller;
}

}  // namespace reactor
