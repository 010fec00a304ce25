// kqueue backend (macOS, FreeBSD, OpenBSD, NetBSD). Level-triggered like the
// epoll backend: EVFILT_READ / EVFILT_WRITE without EV_CLEAR, so whatever the
// loop leaves unread or unaccepted is reported again at the next wait.
//
// How the interface maps onto kqueue:
// - kReadable: EVFILT_READ. A peer's FIN or reset is reported by the same
//   filter with EV_EOF (fflags = the socket's error), so it is readable and
//   peer_closed, and error when fflags is set.
// - kWritable: EVFILT_WRITE; EV_EOF there means the socket cannot send any
//   more (reset, or fully disconnected), error when fflags is set.
// - hangup: both filters reported EV_EOF for the fd in the same wait. Unlike
//   epoll, kqueue reports nothing for an fd without a filter, so a paused
//   connection (no filter) is never woken by a hang-up.
// - kPeerClosed without kReadable (a parked connection): kqueue has no
//   EOF-only filter, so it is EVFILT_READ with NOTE_LOWAT set to INT_MAX:
//   the socket never holds that many bytes, and EOF and errors are checked
//   before the low-water mark (FreeBSD, OpenBSD and NetBSD filt_soread), so
//   only the client's FIN or reset fires it. macOS clamps NOTE_LOWAT to the
//   receive buffer's high-water mark (xnu filt_soread_common), so there a
//   client that fills its receive buffer while parked fires the filter
//   without EV_EOF. Such firings are dropped here, and the filter gets
//   EV_CLEAR so it does not fire again at every wait: a full buffer admits no
//   more data, so the next activation is the FIN or reset, which is then
//   reported. EOF is final, so edge-triggering loses nothing for this watch.
//   Since EV_CLEAR cannot be changed by re-adding a filter (FreeBSD keeps the
//   flags it was created with), switching between the level-triggered read
//   watch and this one deletes the filter and adds it anew.
//
// Interest changes are applied at once (one kevent() per add/modify, several
// changes in one call with EV_RECEIPT), so failures are returned to the loop
// as -errno like epoll_ctl's.
//
// Nesting: pollable_fd() is the kqueue fd, which libuv watches with a uv_poll
// (its own kqueue on macOS/BSD). FreeBSD propagates readiness of a nested
// kqueue properly. On macOS nesting is known to be unreliable: a kqueue fd
// inside another kqueue may be reported readable when nothing is pending
// (libuv issue 883), which would make the uv_poll fire at every iteration
// and spin the CPU while idle (wait() just returns 0 events: no wrong
// behaviour, only wasted wake-ups). libuv >= 1.9.1 accepts kqueue fds in
// uv_poll_init. If this turns out to spin on macOS, the fix is the helper
// thread of poller_thread.h (block in kevent() on another thread, wake the
// loop through a pipe / uv_async) rather than a change here.
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)

#include <fcntl.h>
#include <sys/event.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <vector>

#include "poller.h"

namespace reactor {
namespace {

// What one filter of an fd is registered as.
enum class Watch : uint8_t {
  kOff,
  kLevel,    // EVFILT_READ / EVFILT_WRITE, level-triggered
  kEofOnly,  // EVFILT_READ, NOTE_LOWAT INT_MAX, EV_CLEAR: FIN or reset only
  kUnknown,  // a change failed: the next update deletes and re-adds
};

struct FdState {
  uint64_t token = 0;
  Watch read = Watch::kOff;
  Watch write = Watch::kOff;
};

// Per-output flags gathered while merging the read and write events of an fd.
enum : uint8_t { kReadEof = 1, kWriteEof = 2 };

// udata = token. It is a pointer on macOS, FreeBSD and OpenBSD, an intptr_t
// on NetBSD before 10: the C-style casts fit either.
template <typename T>
void set_udata(T& field, uint64_t token) {
  field = (T)(uintptr_t)token;
}

template <typename T>
uint64_t get_udata(T field) {
  return (uint64_t)(uintptr_t)field;
}

// Fields are set one by one rather than with EV_SET: FreeBSD's EV_SET is a
// compound literal, which C++ rejects for an int ident (narrowing).
struct kevent change(int fd, int16_t filter, uint16_t flags, uint32_t fflags, int64_t data,
                     uint64_t token) {
  struct kevent kev {};
  kev.ident = static_cast<uintptr_t>(fd);
  kev.filter = filter;
  kev.flags = flags;
  kev.fflags = fflags;
  kev.data = data;
  set_udata(kev.udata, token);
  return kev;
}

class KqueuePoller final : public Poller {
 public:
  explicit KqueuePoller(int kq) : kq_(kq) {}
  ~KqueuePoller() override { ::close(kq_); }

  const char* name() const override { return "kqueue"; }
  // See the note at the top of the file on nesting this fd on macOS.
  int pollable_fd() const override { return kq_; }

  // Both diff against what is recorded for the fd, which remove() and
  // detach() reset. Should an fd be closed without remove(), its filters are
  // gone while the record says otherwise: a delete then meets ENOENT, which
  // is ignored, and an add creates the filter anew; so the record can only
  // overstate what is registered, never miss a filter.
  int add(int fd, uint64_t token, uint32_t interest) override {
    return update(fd, token, interest);
  }
  int modify(int fd, uint64_t token, uint32_t interest) override {
    return update(fd, token, interest);
  }
  // Closing an fd removes its filters from the kqueue (we never dup
  // sockets), so only our record of it is dropped.
  int remove(int fd) override {
    if (FdState* s = state(fd, false)) *s = FdState{};
    return 0;
  }
  int detach(int fd) override {
    if (fd < 0) return -EBADF;
    struct kevent changes[2] = {change(fd, EVFILT_READ, EV_DELETE, 0, 0, 0),
                                change(fd, EVFILT_WRITE, EV_DELETE, 0, 0, 0)};
    int rc = apply(changes, 2);
    if (FdState* s = state(fd, false)) {
      s->read = s->write = rc == 0 ? Watch::kOff : Watch::kUnknown;
    }
    return rc;
  }

  int wait(PollEvent* out, int max, int timeout_ms) override {
    if (max <= 0) return 0;
    if (static_cast<int>(buffer_.size()) < max) {
      buffer_.resize(max);
      eofs_.resize(max);
    }
    timespec timeout{};
    if (timeout_ms > 0) {
      timeout.tv_sec = timeout_ms / 1000;
      timeout.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000;
    }
    int n;
    do {
      n = kevent(kq_, nullptr, 0, buffer_.data(), max, timeout_ms < 0 ? nullptr : &timeout);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    int count = 0;
    for (int i = 0; i < n; i++) {
      const struct kevent& e = buffer_[i];
      uint64_t token = get_udata(e.udata);
      bool eof = (e.flags & EV_EOF) != 0;
      // EV_ERROR only comes from a change list, which wait() never passes;
      // kept for safety: the loop then asks the socket (SO_ERROR).
      bool failed = (e.flags & EV_ERROR) != 0 || (eof && e.fflags != 0);
      bool read = e.filter == EVFILT_READ;
      // The EOF-only watch firing without EOF: macOS's clamped low-water
      // mark (see the top of the file). Not the client leaving; dropped.
      if (read && !eof && (e.flags & EV_ERROR) == 0 && is_eof_only(e)) continue;
      // The read and write filters of one fd come as two events; they are
      // merged when it matters (an EOF, to tell a hang-up) so the loop sees
      // one event per fd as with epoll. Other pairs reach the loop as two
      // events, which it handles one after the other.
      int at = eof ? find(out, count, token) : -1;
      if (at < 0) {
        at = count++;
        out[at] = PollEvent{};
        out[at].token = token;
        eofs_[at] = 0;
      }
      PollEvent& p = out[at];
      if (read) {
        if (eof) {
          eofs_[at] |= kReadEof;
          p.peer_closed = 1;
        }
        // An EOF-only watch reports the EOF alone, as epoll's EPOLLRDHUP does.
        if (!eof || !is_eof_only(e)) p.readable = 1;
      } else {
        if (eof) eofs_[at] |= kWriteEof;
        p.writable = 1;
      }
      if (failed) p.error = 1;
      if (eofs_[at] == (kReadEof | kWriteEof)) p.hangup = 1;
    }
    return count;
  }

 private:
  // Whether e comes from the EOF-only watch (recorded state of its fd).
  bool is_eof_only(const struct kevent& e) {
    FdState* s = state(static_cast<int>(e.ident), false);
    return s && s->read == Watch::kEofOnly;
  }

  static int find(const PollEvent* out, int count, uint64_t token) {
    for (int i = 0; i < count; i++) {
      if (out[i].token == token) return i;
    }
    return -1;
  }

  FdState* state(int fd, bool grow) {
    if (fd < 0) return nullptr;
    size_t index = static_cast<size_t>(fd);
    if (index >= fds_.size()) {
      if (!grow) return nullptr;
      fds_.resize(index + 1);
    }
    return &fds_[index];
  }

  int update(int fd, uint64_t token, uint32_t interest) {
    if (fd < 0) return -EBADF;
    FdState* s = state(fd, true);
    Watch read = (interest & kReadable)     ? Watch::kLevel
                 : (interest & kPeerClosed) ? Watch::kEofOnly
                                            : Watch::kOff;
    Watch write = (interest & kWritable) ? Watch::kLevel : Watch::kOff;
    bool retoken = s->token != token;
    struct kevent changes[4];
    int n = 0;
    n += plan(fd, EVFILT_READ, s->read, read, retoken, token, changes + n);
    n += plan(fd, EVFILT_WRITE, s->write, write, retoken, token, changes + n);
    int rc = n > 0 ? apply(changes, n) : 0;
    if (rc == 0) {
      *s = FdState{token, read, write};
    } else {
      s->read = s->write = Watch::kUnknown;
    }
    return rc;
  }

  // The changes taking one filter from `from` to `to`; returns their count.
  static int plan(int fd, int16_t filter, Watch from, Watch to, bool retoken, uint64_t token,
                  struct kevent* out) {
    if (from == to && !retoken) return 0;
    int n = 0;
    // Adding a filter known to be absent needs no delete; a switch between
    // level and EOF-only (EV_CLEAR differs), dropping it, or an unknown state
    // does. Re-adding the same kind just updates udata.
    if (from != Watch::kOff && from != to) {
      out[n++] = change(fd, filter, EV_DELETE, 0, 0, 0);
    }
    switch (to) {
      case Watch::kOff:
      case Watch::kUnknown:
        break;
      case Watch::kLevel:
        out[n++] = change(fd, filter, EV_ADD | EV_ENABLE, 0, 0, token);
        break;
      case Watch::kEofOnly:
        out[n++] = change(fd, filter, EV_ADD | EV_ENABLE | EV_CLEAR, NOTE_LOWAT, INT_MAX, token);
        break;
    }
    return n;
  }

  // Applies changes; a delete of a filter that is not there (ENOENT) is not
  // a failure. Returns 0 or the first -errno.
  int apply(struct kevent* changes, int n) {
#ifdef EV_RECEIPT
    // One call; each change comes back as an EV_ERROR receipt (data 0 on
    // success) and no pending event is consumed.
    struct kevent receipts[4];
    for (int i = 0; i < n; i++) changes[i].flags |= EV_RECEIPT;
    timespec zero{};
    int got;
    do {
      got = kevent(kq_, changes, n, receipts, n, &zero);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return -errno;
    for (int i = 0; i < got; i++) {
      const struct kevent& r = receipts[i];
      if ((r.flags & EV_ERROR) == 0 || r.data == 0) continue;
      if (r.data == ENOENT && is_delete(changes, n, r)) continue;
      return -static_cast<int>(r.data);
    }
    return 0;
#else
    // Without receipts an event list could also return pending events, so
    // each change goes alone with none.
    for (int i = 0; i < n; i++) {
      int rc;
      do {
        rc = kevent(kq_, &changes[i], 1, nullptr, 0, nullptr);
      } while (rc < 0 && errno == EINTR);
      if (rc < 0 && !(errno == ENOENT && (changes[i].flags & EV_DELETE))) return -errno;
    }
    return 0;
#endif
  }

  static bool is_delete(const struct kevent* changes, int n, const struct kevent& receipt) {
    for (int i = 0; i < n; i++) {
      if (changes[i].ident == receipt.ident && changes[i].filter == receipt.filter &&
          (changes[i].flags & EV_DELETE)) {
        return true;
      }
    }
    return false;
  }

  int kq_;
  std::vector<struct kevent> buffer_;
  std::vector<uint8_t> eofs_;
  std::vector<FdState> fds_;  // by fd number
};

}  // namespace

std::unique_ptr<Poller> make_kqueue_poller(std::string* error) {
  int kq = kqueue();
  if (kq < 0) {
    *error = "ERR_REACTOR_BACKEND_UNAVAILABLE";
    return nullptr;
  }
  // kqueues are not inherited by fork() children; close-on-exec keeps the
  // number from leaking into exec'd programs too. Best effort: a failure
  // leaks one fd into a child, it does not make the backend unusable.
  int flags = fcntl(kq, F_GETFD);
  if (flags >= 0) fcntl(kq, F_SETFD, flags | FD_CLOEXEC);
  return std::make_unique<KqueuePoller>(kq);
}

}  // namespace reactor

#endif
