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
//
// Completions (receives()): kReceive is a multishot recv that picks buffers
// from a ring registered with the kernel (one per poller), kAccept a
// multishot accept. Each data CQE is reported with a pointer into the buffer
// it filled, lent to the loop until the next wait() or commit(), when it goes
// back to the ring. A multishot request that ends while still wanted (the
// ring ran dry: -ENOBUFS; an accept error) is armed again at the next
// commit(), after the buffers came back; one that reported end of stream is
// not. Requests are cancelled when the interest drops them, and what they
// still post is reported (bytes already taken from the socket must reach the
// loop); after remove() it is dropped (an accepted fd is closed). Both are
// probed at run time: the opcodes and the buffer ring at init(), the
// multishot flags by their first use (-EINVAL before any success: that kind
// falls back to readiness, as for kReadable, for the life of the ring).
// NATIVE_REACTOR_IO_URING_MULTISHOT=0 turns them off;
// NATIVE_REACTOR_IO_URING_BUFFERS=COUNTxSIZE sizes the ring (tests, bench).
#ifdef NATIVE_REACTOR_IO_URING

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "poller.h"

namespace reactor {
namespace {

// CQEs of cancel requests carry this; they say nothing about an fd.
constexpr uint64_t kCancelTag = ~0ull;
// user_data of a recv or accept request: this bit, a generation (so a cancel
// never hits a later request in the same slot) and the index in ops_. Poll
// requests never have it (fds are below 2^31).
constexpr uint64_t kOpTag = 1ull << 63;
constexpr uint16_t kBufferGroup = 0;
// The buffer ring, 4 MiB of address space touched only as far as data lands.
// Where the kernel consumes buffers incrementally (IOU_PBUF_RING_INC, 6.12;
// liburing 2.3 lacks the names), a receive takes only the bytes it needs
// from the buffer at the head, so messages pack back to back: 64 KiB buffers
// hold ~65,000 small messages in flight (one 8 KiB buffer each ran dry at
// 10,000 connections, and every recv then ended with -ENOBUFS and was armed
// again), and a 16 KiB message mostly lands in one CQE. Elsewhere each
// receive takes a whole buffer: 512 of 8 KiB, and the loop joins the two
// CQEs of a 16 KiB message.
constexpr uint16_t kIncrementalBuffers = 2;  // IOU_PBUF_RING_INC
constexpr uint32_t kBufferMore = 1u << 4;    // IORING_CQE_F_BUF_MORE
constexpr unsigned kIncrementalBufferCount = 64;
constexpr unsigned kIncrementalBufferSize = 64 * 1024;
constexpr unsigned kBufferCount = 512;
constexpr unsigned kBufferSize = 8192;

constexpr uint32_t kCompletionBits = kReceive | kAccept;

uint64_t op_data(uint32_t index, uint32_t gen) {
  return kOpTag | (static_cast<uint64_t>(gen & 0x7fffffffu) << 32) | index;
}

bool env_off(const char* name) {
  const char* value = std::getenv(name);
  return value && std::strcmp(value, "0") == 0;
}

uint32_t to_poll(uint32_t interest) {
  uint32_t events = 0;
  if (interest & kReadable) events |= POLLIN;
  if (interest & kWritable) events |= POLLOUT;
  if (interest & kPeerClosed) events |= POLLRDHUP;
  return events;
}

// user_data = fd and a generation, so a CQE from an earlier request on the
// same fd (removed, re-registered, re-armed) is recognised and dropped.
uint64_t pack(int fd, uint32_t gen) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(fd)) << 32) | gen;
}

// A connection accepted for a listener that closed meanwhile: reset, as the
// kernel resets those left in a closed listener's backlog.
void reset_and_close(int fd) {
  linger option{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof option);
  ::close(fd);
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
    if (ready_) {
      // Connections the kernel accepted that nobody will take.
      submit();
      if (wake_fd_ >= 0) io_uring_get_events(&ring_);
      io_uring_cqe* cqe;
      while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
        uint64_t data = cqe->user_data;
        if (data != kCancelTag && (data & kOpTag) && cqe->res >= 0) {
          uint32_t index = static_cast<uint32_t>(data);
          if (index < ops_.size() && ops_[index].accept) reset_and_close(cqe->res);
        }
        io_uring_cqe_seen(&ring_, cqe);
      }
      io_uring_queue_exit(&ring_);
    }
    release_buffers();
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  // Sets the ring up in place (liburing's struct is not meant to be copied).
  // Returns 0 or -errno.
  int init() {
    io_uring_params params;
    int rc = setup_ring(&params);
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
              io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL);
    bool completions = io_uring_opcode_supported(probe, IORING_OP_RECV) &&
                       io_uring_opcode_supported(probe, IORING_OP_ACCEPT);
    io_uring_free_probe(probe);
    if (!ok) return -ENOSYS;
    // Without completions the backend is what it was: readiness only.
    if (completions && !env_off("NATIVE_REACTOR_IO_URING_MULTISHOT") && setup_buffers() == 0) {
      recv_ok_ = accept_ok_ = true;
    }
    return 0;
  }

  // Deferred task running first (6.1): the receives the kernel owes run in
  // one batch when wait() asks (IORING_ENTER_GETEVENTS), not one by one as
  // each sendmsg returns to user space. Such a ring's fd does not poll
  // readable for that work, so an eventfd the kernel signals stands in for
  // it. Elsewhere, cooperative task running (5.19), then none.
  int setup_ring(io_uring_params* params) {
    const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, 0};
    int rc = -EINVAL;
    for (unsigned flags : tries) {
      if (!(flags & IORING_SETUP_DEFER_TASKRUN) || !env_off("NATIVE_REACTOR_IO_URING_DEFER")) {
        std::memset(params, 0, sizeof *params);
        // A roomy completion queue: every watched fd may complete in one
        // wake-up (and the kernel keeps overflowing CQEs rather than dropping them).
        params->flags = IORING_SETUP_CQSIZE | flags;
        params->cq_entries = 16384;
        rc = io_uring_queue_init_params(1024, &ring_, params);
      }
      if (rc == 0 && (flags & IORING_SETUP_DEFER_TASKRUN) && watch_with_eventfd() < 0) {
        io_uring_queue_exit(&ring_);
        rc = -EINVAL;
      }
      if (rc != -EINVAL) return rc;
    }
    return rc;
  }

  int watch_with_eventfd() {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return -errno;
    int rc = io_uring_register_eventfd(&ring_, wake_fd_);
    if (rc < 0) {
      ::close(wake_fd_);
      wake_fd_ = -1;
    }
    return rc;
  }

  const char* name() const override { return "io_uring"; }
  // The ring fd polls readable while CQEs wait in the completion queue; a
  // ring with deferred task running is watched through its eventfd.
  int pollable_fd() const override { return wake_fd_ >= 0 ? wake_fd_ : ring_.ring_fd; }
  bool reports_peer_closed() const override { return true; }
  bool receives() const override { return recv_ok_ || accept_ok_; }

  int add(int fd, uint64_t token, uint32_t interest) override {
    if (fd < 0) return -EBADF;
    if (static_cast<size_t>(fd) >= regs_.size()) regs_.resize(static_cast<size_t>(fd) + 1);
    Reg& r = regs_[fd];
    if (r.active) return -EEXIST;
    r.active = true;
    r.token = token;
    r.interest = interest;
    r.ended = false;
    schedule(fd, r);
    return 0;
  }

  int modify(int fd, uint64_t token, uint32_t interest) override {
    Reg* r = find(fd);
    if (!r) return -ENOENT;
    r->token = token;
    if (r->op >= 0) ops_[r->op].token = token;
    uint32_t before = r->interest;
    r->interest = interest;
    if ((before & kCompletionBits) != (interest & kCompletionBits)) r->ended = false;
    if (!wants_op(*r)) {
      // A recv takes bytes from the socket until the kernel sees the
      // cancellation: submitted now, so a paused connection pushes back.
      if (r->op >= 0) {
        cancel_op(*r);
        submit();
      }
    } else if (r->op < 0) {
      schedule(fd, *r);
    }
    // A quiet poll must become a one-shot one too: what it ignored may be
    // wanted now.
    if (poll_interest(before) == poll_interest(interest) &&
        needs_poll(before) == needs_poll(interest) && r->armed && !r->multishot) {
      return 0;
    }
    disarm(fd, *r);
    schedule(fd, *r);
    return 0;
  }

  // The poll and recv requests hold a reference to the socket: the
  // cancellations are submitted now, so the close that follows really
  // releases it (the peer sees the FIN at once). Whatever the requests of
  // this registration still post is dropped.
  int remove(int fd) override {
    Reg* r = find(fd);
    if (!r) {
      // Detached, maybe with a cancelled request still posting.
      if (fd >= 0 && static_cast<size_t>(fd) < regs_.size()) regs_[fd].epoch++;
      return 0;
    }
    bool was_armed = r->armed || r->op >= 0;
    forget(fd, *r);
    r->epoch++;
    if (was_armed) release_now();
    return 0;
  }

  int detach(int fd) override {
    Reg* r = find(fd);
    if (!r) return -ENOENT;
    bool had_op = r->op >= 0;
    forget(fd, *r);
    if (had_op) release_now();
    return 0;
  }

  // A ring with deferred task running is entered here only to submit: its
  // work waits for the next wait(), and the eventfd says when there is some.
  void commit() override {
    arm_pending();
    if (wake_fd_ < 0 || io_uring_sq_ready(&ring_) > 0) submit();
  }

  int wait(PollEvent* out, int max, int timeout_ms) override {
    timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
      // Every lent buffer goes back first (none was handed out by a round
      // that found no event).
      arm_pending();
      int rc = submit(wake_fd_ >= 0);
      if (rc < 0) return rc;
      int n = reap(out, max);
      if (wake_fd_ >= 0) rearm_wake();
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
    uint32_t epoch = 0;      // bumped by remove(): requests of earlier registrations are orphans
    int32_t op = -1;         // the live recv or accept request (index in ops_)
    bool active = false;     // registered with add()
    bool armed = false;      // a poll request for gen is in the kernel
    bool multishot = false;  // that request is a quiet one
    bool pending = false;    // in pending_, to be armed
    bool ended = false;      // the recv reported end of stream: not armed again
  };

  // A multishot recv or accept, from its submission to its last CQE (the one
  // without IORING_CQE_F_MORE), including after a cancellation.
  struct Op {
    int fd = -1;
    uint64_t token = 0;
    uint32_t epoch = 0;
    uint32_t gen = 0;
    bool accept = false;
    bool used = false;
  };

  // What the poll part watches: readiness bits, plus kReadable for a
  // completion kind that fell back to readiness.
  uint32_t poll_interest(uint32_t interest) const {
    uint32_t p = interest & (kReadable | kWritable | kPeerClosed);
    if ((interest & kReceive) && !recv_ok_) p |= kReadable;
    if ((interest & kAccept) && !accept_ok_) p |= kReadable;
    return p;
  }
  // No poll at all for a registration that is only a recv or an accept; an
  // empty interest still has one, for errors and hang-ups as epoll has.
  bool needs_poll(uint32_t interest) const { return poll_interest(interest) != 0 || interest == 0; }
  bool receiving(uint32_t interest) const { return (interest & kReceive) && recv_ok_; }
  bool wants_op(const Reg& r) const {
    return r.active && !r.ended &&
           (((r.interest & kReceive) && recv_ok_) || ((r.interest & kAccept) && accept_ok_));
  }

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
    cancel_op(r);
    r.active = false;
  }

  // What the cancelled request posted before it ends is still reported.
  void cancel_op(Reg& r) {
    if (r.op < 0) return;
    cancel(op_data(static_cast<uint32_t>(r.op), ops_[r.op].gen));
    r.op = -1;
  }

  void arm_op(int fd, Reg& r) {
    io_uring_sqe* sqe = next_sqe();
    if (!sqe) {
      schedule(fd, r);
      return;
    }
    uint32_t index;
    if (!free_ops_.empty()) {
      index = free_ops_.back();
      free_ops_.pop_back();
    } else {
      index = static_cast<uint32_t>(ops_.size());
      ops_.emplace_back();
    }
    Op& op = ops_[index];
    op.fd = fd;
    op.token = r.token;
    op.epoch = r.epoch;
    op.gen++;
    op.used = true;
    op.accept = !receiving(r.interest);
    if (op.accept) {
      io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } else {
      io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
      sqe->flags |= IOSQE_BUFFER_SELECT;
      sqe->buf_group = kBufferGroup;
    }
    io_uring_sqe_set_data64(sqe, op_data(index, op.gen));
    r.op = static_cast<int32_t>(index);
  }

  // Incremental buffers first, whole ones where the kernel refuses them.
  int setup_buffers() {
    unsigned count = 0, size = 0;
    if (const char* spec = std::getenv("NATIVE_REACTOR_IO_URING_BUFFERS")) {
      if (std::sscanf(spec, "%ux%u", &count, &size) != 2 || count < 1 || count > 32768 ||
          (count & (count - 1)) != 0 || size < 64) {
        count = size = 0;
      }
    }
    int rc = register_buffers(count ? count : kIncrementalBufferCount,
                              count ? size : kIncrementalBufferSize, true);
    if (rc == -EINVAL) {
      rc = register_buffers(count ? count : kBufferCount, count ? size : kBufferSize, false);
    }
    return rc;
  }

  int register_buffers(unsigned count, unsigned size, bool incremental) {
    release_buffers();
    buffer_count_ = count;
    buffer_size_ = size;
    buffer_ring_bytes_ = buffer_count_ * sizeof(io_uring_buf);
    void* ring = mmap(nullptr, buffer_ring_bytes_, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ring == MAP_FAILED) return -ENOMEM;
    buffer_ring_ = static_cast<io_uring_buf_ring*>(ring);
    void* memory = mmap(nullptr, static_cast<size_t>(buffer_count_) * buffer_size_,
                        PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return -ENOMEM;
    buffers_ = static_cast<uint8_t*>(memory);
    // Positional: the flags field is "pad" in older liburing headers.
    io_uring_buf_reg reg{reinterpret_cast<uintptr_t>(buffer_ring_),
                         buffer_count_,
                         kBufferGroup,
                         incremental ? kIncrementalBuffers : uint16_t{0},
                         {}};
    // EINVAL before 5.19 (no buffer rings: no completions), or before 6.12
    // for incremental ones.
    int rc = io_uring_register_buf_ring(&ring_, &reg, 0);
    if (rc < 0) return rc;
    io_uring_buf_ring_init(buffer_ring_);
    consumed_.assign(incremental ? buffer_count_ : 0, 0);
    for (unsigned i = 0; i < buffer_count_; i++) lent_.push_back(static_cast<uint16_t>(i));
    give_back();
    return 0;
  }

  void release_buffers() {
    if (buffer_ring_) munmap(buffer_ring_, buffer_ring_bytes_);
    if (buffers_) munmap(buffers_, static_cast<size_t>(buffer_count_) * buffer_size_);
    buffer_ring_ = nullptr;
    buffers_ = nullptr;
  }

  // Where the bytes of a CQE that used buffer `id` start. An incremental
  // buffer is the kernel's until a CQE without IORING_CQE_F_BUF_MORE; only
  // then is it lent to the loop (and given back at the next wait or commit).
  const uint8_t* lend(uint16_t id, int res, uint32_t flags) {
    uint8_t* base = buffers_ + static_cast<size_t>(id) * buffer_size_;
    if (consumed_.empty()) {
      lent_.push_back(id);
      return base;
    }
    const uint8_t* bytes = base + consumed_[id];
    if (res > 0) consumed_[id] += static_cast<uint32_t>(res);
    if (!(flags & kBufferMore)) {
      consumed_[id] = 0;
      lent_.push_back(id);
    }
    return bytes;
  }

  // Lent buffers go back to the ring.
  void give_back() {
    if (lent_.empty()) return;
    int mask = io_uring_buf_ring_mask(buffer_count_);
    int offset = 0;
    for (uint16_t id : lent_) {
      io_uring_buf_ring_add(buffer_ring_, buffers_ + static_cast<size_t>(id) * buffer_size_,
                            buffer_size_, id, mask, offset++);
    }
    io_uring_buf_ring_advance(buffer_ring_, offset);
    lent_.clear();
  }

  // Cancels the live request; whatever it still posts carries an old gen.
  void disarm(int fd, Reg& r) {
    if (!r.armed) return;
    cancel(pack(fd, r.gen));
    r.armed = false;
    r.gen++;
  }

  // IORING_OP_ASYNC_CANCEL, not POLL_REMOVE: a poll-remove that meets a
  // poll while its wake-up is being handled fails (-EALREADY), which would
  // leave a multishot poll alive, holding the socket open after close().
  // A cancellation marks it and always takes effect.
  void cancel(uint64_t user_data) {
    io_uring_sqe* sqe = next_sqe();
    if (!sqe) return;
    io_uring_prep_cancel64(sqe, user_data, 0);
    io_uring_sqe_set_data64(sqe, kCancelTag);
  }

  void arm(int fd, Reg& r, bool multishot) {
    io_uring_sqe* sqe = next_sqe();
    if (!sqe) {
      schedule(fd, r);  // the ring is in trouble; retried at the next commit
      return;
    }
    r.gen++;
    unsigned mask = to_poll(poll_interest(r.interest));
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
    give_back();
    if (pending_.empty()) return;
    arming_.swap(pending_);
    for (int fd : arming_) {
      Reg& r = regs_[fd];
      r.pending = false;
      if (!r.active) continue;
      if (!r.armed && needs_poll(r.interest)) arm(fd, r, false);
      if (r.op < 0 && wants_op(r)) arm_op(fd, r);
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

  // Submits what is queued; `run_deferred` also runs the work a ring with
  // deferred task running holds, which posts its CQEs.
  int submit(bool run_deferred = false) {
    int rc;
    do {
      rc = run_deferred ? io_uring_submit_and_get_events(&ring_) : io_uring_submit(&ring_);
    } while (rc == -EINTR);
    // EBUSY/EAGAIN: the completion side is backed up; reaping frees it and
    // the SQEs stay queued for the next submit.
    if (rc == -EBUSY || rc == -EAGAIN) return 0;
    return rc < 0 ? rc : 0;
  }

  // A cancelled request lets go of its socket when its completion runs,
  // which a ring with deferred task running does only when asked.
  void release_now() { submit(wake_fd_ >= 0); }

  // The eventfd stays readable while there is something to do, and is
  // cleared only when there is nothing: after the work ran, so the CQEs it
  // posted (each batch signals it) do not wake the loop for nothing. The
  // kernel signals it when work arrives on an empty list, after setting
  // IORING_SQ_TASKRUN, so work that came between the check and the clear
  // signals it again here. Under load it is left alone: no syscall.
  void rearm_wake() {
    if (has_work()) return;
    uint64_t count;
    while (::read(wake_fd_, &count, sizeof count) < 0 && errno == EINTR) {
    }
    if (has_work()) {
      count = 1;
      while (::write(wake_fd_, &count, sizeof count) < 0 && errno == EINTR) {
      }
    }
  }

  bool has_work() {
    return (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0 ||
           io_uring_cq_ready(&ring_) > 0;
  }

  // Turns CQEs into events, at most max; the rest stay queued, which keeps
  // the ring fd (or the eventfd: rearm_wake) readable.
  int reap(PollEvent* out, int max) {
    int n = 0;
    io_uring_cqe* cqe;
    // Counted first: liburing's peek enters the kernel when it finds none
    // while task work is pending, once per wake-up for nothing.
    while (n < max && io_uring_cq_ready(&ring_) > 0 && io_uring_peek_cqe(&ring_, &cqe) == 0) {
      uint64_t data = cqe->user_data;
      int res = cqe->res;
      bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
      uint32_t flags = cqe->flags;
      io_uring_cqe_seen(&ring_, cqe);
      if (data == kCancelTag) continue;
      if (data & kOpTag) {
        if (completed(static_cast<uint32_t>(data), res, flags, &out[n])) n++;
        continue;
      }
      int fd = static_cast<int>(data >> 32);
      Reg* r = find(fd);
      if (!r || !r->armed || r->gen != static_cast<uint32_t>(data)) {
        // Stale. A multishot poll still posting was not cancelled after
        // all (the ring was full): again, so it cannot outlive its socket.
        if (more) cancel(data);
        continue;
      }
      if (!more) r->armed = false;
      if (res < 0) {
        // The request failed (not cancelled by us: that would be stale).
        // Report an error so the loop asks the socket itself; -EBADF says
        // the fd was closed (a watcher's), which by the time the loop asks
        // may be another socket's number.
        r->armed = false;
        schedule(fd, *r);
        out[n].token = r->token;
        out[n].readable = 0;
        out[n].writable = 0;
        out[n].error = 1;
        out[n].hangup = 0;
        out[n].peer_closed = 0;
        out[n].completion = kNoCompletion;
        out[n].result = res;
        n++;
        continue;
      }
      uint32_t events = static_cast<uint32_t>(res) & reportable(*r);
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
      out[n].completion = kNoCompletion;
      out[n].result = 0;
      n++;
    }
    return n;
  }

  // What a poll report may carry, as epoll would: the interest plus error
  // and hang-up; while a recv watches the fd, its end of stream stands for
  // the hang-up (reporting both would make the loop read beside the recv).
  uint32_t reportable(const Reg& r) const {
    uint32_t events = to_poll(poll_interest(r.interest)) | POLLERR;
    if (!receiving(r.interest)) events |= POLLHUP;
    return events;
  }

  // A CQE of a recv or accept. Returns true if it filled *out.
  bool completed(uint32_t index, int res, uint32_t flags, PollEvent* out) {
    if (index >= ops_.size() || !ops_[index].used) return false;
    Op& op = ops_[index];
    const uint8_t* bytes = nullptr;
    if (flags & IORING_CQE_F_BUFFER) {
      bytes = lend(static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT), res, flags);
    }
    int fd = op.fd;
    bool accept = op.accept;
    uint64_t token = op.token;
    Reg& r = regs_[fd];
    bool orphan = op.epoch != r.epoch;
    bool current = !orphan && r.op == static_cast<int32_t>(index);
    if (!(flags & IORING_CQE_F_MORE)) {
      // The last CQE of this request.
      op.used = false;
      free_ops_.push_back(index);
      if (current) {
        r.op = -1;
        if (!accept && res == 0) r.ended = true;
        schedule(fd, r);  // armed again at the next commit if still wanted
      }
    }
    if (orphan) {
      if (accept && res >= 0) reset_and_close(res);
      if (flags & IORING_CQE_F_MORE) cancel(op_data(index, op.gen));  // as for stale polls
      return false;
    }
    if (res == -ECANCELED) return false;
    if (!accept && res == -ENOBUFS) return false;  // the ring ran dry: see schedule above
    bool& proven = accept ? accept_proven_ : recv_proven_;
    if (res == -EINVAL && !proven) {
      // The kernel has the opcode but not the multishot flag.
      (accept ? accept_ok_ : recv_ok_) = false;
      if (r.active) {
        disarm(fd, r);
        schedule(fd, r);
      }
      return false;
    }
    if (res >= 0) proven = true;
    out->token = token;
    out->readable = 0;
    out->writable = 0;
    out->error = 0;
    out->hangup = 0;
    out->peer_closed = 0;
    out->completion = accept ? kAcceptedFd : kReceived;
    out->result = res;
    out->data = res > 0 ? bytes : nullptr;
    return true;
  }

  io_uring ring_{};
  bool ready_ = false;
  int wake_fd_ = -1;      // the eventfd of a ring with deferred task running
  bool recv_ok_ = false;  // multishot recv with the buffer ring
  bool accept_ok_ = false;
  bool recv_proven_ = false;  // one succeeded: -EINVAL is an error of its own now
  bool accept_proven_ = false;
  io_uring_buf_ring* buffer_ring_ = nullptr;
  size_t buffer_ring_bytes_ = 0;
  uint8_t* buffers_ = nullptr;
  unsigned buffer_count_ = 0;
  unsigned buffer_size_ = 0;
  std::vector<uint16_t> lent_;      // buffers handed out since the last give_back()
  std::vector<uint32_t> consumed_;  // incremental buffers: bytes the kernel used, by id
  std::vector<Op> ops_;
  std::vector<uint32_t> free_ops_;
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
