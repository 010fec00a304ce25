// epoll backend (Linux). Level-triggered: the loop reads and accepts a bounded
// amount per wake-up and relies on being told again about what is left.
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "poller.h"

namespace reactor {
namespace {

uint32_t to_epoll(uint32_t interest) {
  uint32_t events = 0;
  if (interest & kReadable) events |= EPOLLIN;
  if (interest & kWritable) events |= EPOLLOUT;
  if (interest & kPeerClosed) events |= EPOLLRDHUP;
  return events;
}

class EpollPoller final : public Poller {
 public:
  explicit EpollPoller(int epfd) : epfd_(epfd) {}
  ~EpollPoller() override { ::close(epfd_); }

  const char* name() const override { return "epoll"; }
  int pollable_fd() const override { return epfd_; }
  bool reports_peer_closed() const override { return true; }

  int add(int fd, uint64_t token, uint32_t interest) override {
    return control(EPOLL_CTL_ADD, fd, token, interest);
  }
  int modify(int fd, uint64_t token, uint32_t interest) override {
    return control(EPOLL_CTL_MOD, fd, token, interest);
  }
  // Closing an fd drops it from the epoll set (we never dup sockets), so the
  // syscall is skipped.
  int remove(int) override { return 0; }
  int detach(int fd) override {
    epoll_event unused{};
    return epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &unused) == 0 ? 0 : -errno;
  }

  int wait(PollEvent* out, int max, int timeout_ms) override {
    if (static_cast<int>(buffer_.size()) < max) buffer_.resize(max);
    int n;
    do {
      n = epoll_wait(epfd_, buffer_.data(), max, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
      const epoll_event& e = buffer_[i];
      out[i].token = e.data.u64;
      out[i].readable = (e.events & (EPOLLIN | EPOLLPRI)) != 0;
      out[i].writable = (e.events & EPOLLOUT) != 0;
      out[i].error = (e.events & EPOLLERR) != 0;
      out[i].hangup = (e.events & EPOLLHUP) != 0;
      out[i].peer_closed = (e.events & EPOLLRDHUP) != 0;
    }
    return n;
  }

 private:
  int control(int op, int fd, uint64_t token, uint32_t interest) {
    epoll_event e{};
    e.events = to_epoll(interest);
    e.data.u64 = token;
    return epoll_ctl(epfd_, op, fd, &e) == 0 ? 0 : -errno;
  }

  int epfd_;
  std::vector<epoll_event> buffer_;
};

}  // namespace

std::unique_ptr<Poller> make_epoll_poller(std::string* error) {
  int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) {
    *error = creation_error(errno);
    return nullptr;
  }
  return std::make_unique<EpollPoller>(fd);
}

}  // namespace reactor
