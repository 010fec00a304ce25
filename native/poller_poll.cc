// poll backend (POSIX fallback). poll() is level-triggered and takes the whole
// set on every call, so the set lives in one pollfd array (an fd's slot found
// through a map). Its wait is not a pollable fd: a ReadinessThread provides one.
#include <poll.h>

#include <cerrno>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "poller.h"
#include "poller_thread.h"

namespace reactor {
namespace {

short to_poll(uint32_t interest) {
  short events = 0;
  if (interest & kReadable) events |= POLLIN;
  if (interest & kWritable) events |= POLLOUT;
#ifdef POLLRDHUP
  if (interest & kPeerClosed) events |= POLLRDHUP;
#endif
  return events;
}

class PollPoller final : public Poller {
 public:
  PollPoller() : thread_([this] { watched_ = fds_; }, [this](int wake) { return block(wake); }) {}

  bool start(std::string* error) { return thread_.start(error); }

  const char* name() const override { return "poll"; }
  int pollable_fd() const override { return thread_.notify_fd(); }
#ifdef POLLRDHUP
  bool reports_peer_closed() const override { return true; }
#endif

  int add(int fd, uint64_t token, uint32_t interest) override {
    std::lock_guard<std::mutex> lock(thread_.mutex());
    if (index_.count(fd)) return -EEXIST;
    index_[fd] = fds_.size();
    fds_.push_back({fd, to_poll(interest), 0});
    tokens_.push_back(token);
    thread_.changed();
    return 0;
  }

  int modify(int fd, uint64_t token, uint32_t interest) override {
    std::lock_guard<std::mutex> lock(thread_.mutex());
    auto it = index_.find(fd);
    if (it == index_.end()) return -ENOENT;
    fds_[it->second].events = to_poll(interest);
    tokens_[it->second] = token;
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
    auto it = index_.find(fd);
    if (it == index_.end()) return -ENOENT;
    size_t at = it->second;
    index_.erase(it);
    if (at != fds_.size() - 1) {
      fds_[at] = fds_.back();
      tokens_[at] = tokens_.back();
      index_[fds_[at].fd] = at;
    }
    fds_.pop_back();
    tokens_.pop_back();
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
    std::lock_guard<std::mutex> lock(thread_.mutex());
    int ready;
    do {
      ready = ::poll(fds_.data(), fds_.size(), timeout_ms);
    } while (ready < 0 && errno == EINTR);
    if (ready <= 0) return ready < 0 ? -errno : 0;
    // Start where the last scan stopped so a full batch never starves the rest.
    int n = 0;
    size_t size = fds_.size(), start = next_ % size;
    for (size_t i = 0; i < size && n < max; i++) {
      size_t at = (start + i) % size;
      short revents = fds_[at].revents;
      if (revents == 0) continue;
      PollEvent& e = out[n++];
      e.token = tokens_[at];
      e.readable = (revents & (POLLIN | POLLPRI)) != 0;
      e.writable = (revents & POLLOUT) != 0;
      e.error = (revents & (POLLERR | POLLNVAL)) != 0;
      e.hangup = (revents & POLLHUP) != 0;
#ifdef POLLRDHUP
      e.peer_closed = (revents & POLLRDHUP) != 0;
#else
      e.peer_closed = 0;
#endif
      next_ = (at + 1) % size;
    }
    return n;
  }

  // Helper thread: the watched copy plus the wake pipe.
  int block(int wake) {
    watched_.push_back({wake, POLLIN, 0});
    int ready;
    do {
      ready = ::poll(watched_.data(), watched_.size(), -1);
    } while (ready < 0 && errno == EINTR);
    bool woken = watched_.back().revents != 0;
    watched_.pop_back();
    if (ready < 0) return 0;
    return ready - (woken ? 1 : 0);
  }

  std::vector<pollfd> fds_;
  std::vector<uint64_t> tokens_;
  std::unordered_map<int, size_t> index_;
  size_t next_ = 0;
  std::vector<pollfd> watched_;  // the helper thread's copy
  ReadinessThread thread_;       // last: stopped before the sets above go
};

}  // namespace

std::unique_ptr<Poller> make_poll_poller(std::string* error) {
  auto poller = std::make_unique<PollPoller>();
  if (!poller->start(error)) return nullptr;
  return poller;
}

}  // namespace reactor
