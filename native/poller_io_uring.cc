// io_uring backend (Linux, opt-in). Readiness through IORING_OP_POLL_ADD so it
// fits the Poller interface. The loop expects level-triggered reports, and a
// multishot poll only posts on wake-ups (an fd left readable is not reported
// again), so each registration is watched by a one-shot poll that wait() or
// commit() re-arms after every report, with the interest current then.
//
// The kernel always adds POLLERR, POLLHUP and POLLRDHUP to a poll's mask, and
// POLLRDHUP never clears once the peer shut down. epoll reports RDHUP only on
// request, so an fd whose poll finished with nothing it asked for is watched
// by a multishot poll instead ("quiet"): it posts only on later wake-ups, so
// a sticky RDHUP nobody wants cannot spin the loop.
#ifdef NATIVE_REACTOR_IO_URING

#include <liburing.h>
#include <poll.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "poller.h"

namespace reactor {
namespace {

// CQEs of poll-remove requests carry this; they say nothing about an fd.
constexpr uint64_t kCancelTag = ~0ull;

uint32_t to_poll(uint32_t interest) {
  uint32_t events = 0;
  if (interest & kReadable) events |= POLLIN;
  if (interest & kWritable) events |= POLLOUT;
  if (interest & kPeerClosed) events |= POLLRDHUP;
  return events;
}

// What a report may carry, as epoll would: the interest plus error and hang-up.
uint32_t reportable(uint32_t interest) { return to_poll(interest) | POLLERR | POLLHUP; }

// user_data = fd and a generation, so a CQE from an earlier request on the
// same fd (removed, re-registered, re-armed) is recognised and dropped.
uint64_t pack(int fd, uint32_t gen) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(fd)) << 32) | gen;
}

uint64_t elapsed_ms(const timespec& since) {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec - since.tv_sec) * 1000 +
         (now.tv_nsec - since.tv_nsec) / 1000000;
}

class IoUringPoller final : public Poller {
 public:
  IoUringPoller() = default;
  ~IoUringPoller() override {
    if (ready_) io_uring_queue_exit(&ring_);
  }

  // Sets the ring up in place (liburing's struct is not meant to be copied).
  // Returns 0 or -errno.
  int init() {
    io_uring_params params;
    std::memset(&params, 0, sizeof params);
    // A roomy completion queue: every watched fd may complete in one wake-up
    // (and the kernel keeps overflowing CQEs rather than dropping them).
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = 16384;
    // Completions need no interrupt of a running thread: it enters the kernel
    // soon enough, and a thread asleep in libuv is still woken (5.19+).
    params.flags |= IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    int rc = io_uring_queue_init_params(1024, &ring_, &params);
    if (rc == -EINVAL) {
      std::memset(&params, 0, sizeof params);
      params.flags = IORING_SETUP_CQSIZE;
      params.cq_entries = 16384;
      rc = io_uring_queue_init_params(1024, &ring_, &params);
    }
    if (rc < 0) return rc;
    ready_ = true;
    // Quiet polls need multishot poll (5.13); IORING_FEAT_RSRC_TAGS came in
    // the same release and stands in for it (no probe can tell poll flags).
    if (!(params.features & IORING_FEAT_NODROP) || !(params.features & IORING_FEAT_RSRC_TAGS)) {
      return -ENOSYS;
    }
    io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
    if (!probe) return -ENOSYS;
    bool ok = io_uring_opcode_supported(probe, IORING_OP_POLL_ADD) &&
              io_uring_opcode_supported(probe, IORING_OP_POLL_REMOVE);
    io_uring_free_probe(probe);
    return ok ? 0 : -ENOSYS;
  }

  const char* name() const override { return "io_uring"; }
  // The ring fd polls readable while CQEs wait in the completion queue.
  int pollable_fd() const override { return ring_.ring_fd; }
  bool reports_peer_closed() const override { return true; }

  int add(int fd, uint64_t token, uint32_t interest) override {
    if (fd < 0) return -EBADF;
    if (static_cast<size_t>(fd) >= regs_.size()) regs_.resize(static_cast<size_t>(fd) + 1);
    Reg& r = regs_[fd];
    if (r.active) return -EEXIST;
    r.active = true;
    r.token = token;
    r.interest = interest;
    schedule(fd, r);
    return 0;
  }

  int modify(int fd, uint64_t token, uint32_t interest) override {
    Reg* r = find(fd);
    if (!r) return -ENOENT;
    r->token = token;
    // A quiet poll must become a one-shot one too: what it ignored may be
    // wanted now.
    if (r->interest == interest && r->armed && !r->multishot) return 0;
    r->interest = interest;
    disarm(fd, *r);
    schedule(fd, *r);
    return 0;
  }

  // The poll request holds a reference to the socket: the cancellation is
  // submitted now, so the close that follows really releases it (the peer
  // sees the FIN at once).
  int remove(int fd) override {
    Reg* r = find(fd);
    if (!r) return 0;
    bool was_armed = r->armed;
    forget(fd, *r);
    if (was_armed) submit();
    return 0;
  }

  int detach(int fd) override {
    Reg* r = find(fd);
    if (!r) return -ENOENT;
    forget(fd, *r);
    return 0;
  }

  void commit() override {
    arm_pending();
    submit();
  }

  int wait(PollEvent* out, int max, int timeout_ms) override {
    arm_pending();
    timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
      int rc = submit();
      if (rc < 0) return rc;
      int n = reap(out, max);
      if (n != 0 || timeout_ms == 0) return n;
      // Only dropped CQEs so far: keep waiting for the rest of the timeout.
      io_uring_cqe* cqe = nullptr;
      if (timeout_ms < 0) {
        rc = io_uring_wait_cqe(&ring_, &cqe);
      } else {
        uint64_t spent = elapsed_ms(start);
        if (spent >= static_cast<uint64_t>(timeout_ms)) return 0;
        uint64_t left = static_cast<uint64_t>(timeout_ms) - spent;
        __kernel_timespec ts{static_cast<long long>(left / 1000),
                             static_cast<long long>(left % 1000) * 1000000};
        rc = io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
      }
      if (rc == -ETIME || rc == -EINTR) continue;
      if (rc < 0) return rc;
    }
  }

 private:
  struct Reg {
    uint64_t token = 0;
    uint32_t interest = 0;
    uint32_t gen = 0;
    bool active = false;     // registered with add()
    bool armed = false;      // a poll request for gen is in the kernel
    bool multishot = false;  // that request is a quiet one
    bool pending = false;    // in pending_, to be armed
  };

  Reg* find(int fd) {
    if (fd < 0 || static_cast<size_t>(fd) >= regs_.size() || !regs_[fd].active) return nullptr;
    return &regs_[fd];
  }

  void schedule(int fd, Reg& r) {
    if (r.pending) return;
    r.pending = true;
    pending_.push_back(fd);
  }

  void forget(int fd, Reg& r) {
    disarm(fd, r);
    r.active = false;
  }

  // Cancels the live request; whatever it still posts carries an old gen.
  void disarm(int fd, Reg& r) {
    if (!r.armed) return;
    io_uring_sqe* sqe = next_sqe();
    if (sqe) {
      io_uring_prep_poll_remove(sqe, pack(fd, r.gen));
      io_uring_sqe_set_data64(sqe, kCancelTag);
    }
    r.armed = false;
    r.gen++;
  }

  void arm(int fd, Reg& r, bool multishot) {
    io_uring_sqe* sqe = next_sqe();
    if (!sqe) {
      schedule(fd, r);  // the ring is in trouble; retried at the next commit
      return;
    }
    r.gen++;
    unsigned mask = to_poll(r.interest);
    if (multishot) {
      io_uring_prep_poll_multishot(sqe, fd, mask);
    } else {
      io_uring_prep_poll_add(sqe, fd, mask);
    }
    io_uring_sqe_set_data64(sqe, pack(fd, r.gen));
    r.armed = true;
    r.multishot = multishot;
  }

  void arm_pending() {
    if (pending_.empty()) return;
    arming_.swap(pending_);
    for (int fd : arming_) {
      Reg& r = regs_[fd];
      r.pending = false;
      if (r.active && !r.armed) arm(fd, r, false);
    }
    arming_.clear();
  }

  // An SQE, submitting the full queue first if needed; null if the ring
  // cannot take one.
  io_uring_sqe* next_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe && submit() >= 0) sqe = io_uring_get_sqe(&ring_);
    return sqe;
  }

  int submit() {
    int rc;
    do {
      rc = io_uring_submit(&ring_);
    } while (rc == -EINTR);
    // EBUSY/EAGAIN: the completion side is backed up; reaping frees it and
    // the SQEs stay queued for the next submit.
    if (rc == -EBUSY || rc == -EAGAIN) return 0;
    return rc < 0 ? rc : 0;
  }

  // Turns CQEs into events, at most max; the rest stay queued, which keeps
  // the ring fd readable.
  int reap(PollEvent* out, int max) {
    int n = 0;
    io_uring_cqe* cqe;
    while (n < max && io_uring_peek_cqe(&ring_, &cqe) == 0) {
      uint64_t data = cqe->user_data;
      int res = cqe->res;
      bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
      io_uring_cqe_seen(&ring_, cqe);
      if (data == kCancelTag) continue;
      int fd = static_cast<int>(data >> 32);
      Reg* r = find(fd);
      if (!r || !r->armed || r->gen != static_cast<uint32_t>(data)) continue;  // stale
      if (!more) r->armed = false;
      if (res < 0) {
        // The request failed (not cancelled by us: that would be stale).
        // Report an error so the loop asks the socket itself.
        r->armed = false;
        schedule(fd, *r);
        out[n].token = r->token;
        out[n].readable = 0;
        out[n].writable = 0;
        out[n].error = 1;
        out[n].hangup = 0;
        out[n].peer_closed = 0;
        n++;
        continue;
      }
      uint32_t events = static_cast<uint32_t>(res) & reportable(r->interest);
      if (events == 0) {
        // Only what nobody asked for (a sticky RDHUP): wait for a wake-up.
        if (!r->armed) arm(fd, *r, true);
        continue;
      }
      // Level-triggered: re-armed (one-shot) once the loop has handled it.
      if (r->armed) disarm(fd, *r);
      schedule(fd, *r);
      out[n].token = r->token;
      out[n].readable = (events & POLLIN) != 0;
      out[n].writable = (events & POLLOUT) != 0;
      out[n].error = (events & POLLERR) != 0;
      out[n].hangup = (events & POLLHUP) != 0;
      out[n].peer_closed = (events & POLLRDHUP) != 0;
      n++;
    }
    return n;
  }

  io_uring ring_{};
  bool ready_ = false;
  std::vector<Reg> regs_;     // by fd
  std::vector<int> pending_;  // fds to arm at the next commit or wait
  std::vector<int> arming_;   // pending_'s previous buffer, reused
};

}  // namespace

std::unique_ptr<Poller> make_io_uring_poller(int* refused) {
  // EPERM (disabled by sysctl or seccomp), ENOSYS (no io_uring, or a kernel
  // too old for what we use), ENOMEM (locked-memory limit on older kernels).
  auto poller = std::make_unique<IoUringPoller>();
  int rc = poller->init();
  if (rc < 0) {
    *refused = -rc;
    return nullptr;
  }
  return poller;
}

}  // namespace reactor

#endif  // NATIVE_REACTOR_IO_URING
