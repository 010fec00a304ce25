// Watchers: readiness of a descriptor the loop does not own (a pipe, a tty,
// an eventfd, an inotify fd, a serial device, a socket made elsewhere),
// reported as kWatch records and level-triggered, as libuv's uv_poll_t: what
// is left unread is reported again at the next wake-up. The fd stays the
// caller's; nothing here closes it.
//
// A hang-up or an error is reported once, then the watcher is detached until
// watch_update(): epoll reports both whatever the interest, at every wait, so
// a watcher whose owner ignores them would spin the loop. After a hang-up
// nothing more arrives, so what is left can be read at once.
//
// Closing the fd while it is watched is the caller's error (libuv says the
// same of uv_poll), detected where it shows. epoll drops a closed fd without
// a word, and the number may come back from the loop's own accept() or
// socket(): the index fd -> watcher tells adopt() that the watcher holding it
// lost its fd, so the watcher lets go of its registration before the new
// socket registers (and never touches that number again) and is reported
// EBADF from settle(). poll's POLLNVAL and select failing with EBADF (the
// backend then names the closed fds) arrive as errors whose SO_ERROR is
// EBADF, io_uring's failed poll as an error carrying -EBADF; watch_update()
// checks the fd itself.
#ifndef _WIN32
#include <fcntl.h>
#endif

#include <cerrno>

#include "loop_core.h"

namespace reactor {
namespace {

bool descriptor_open(int fd) {
#ifdef _WIN32
  (void)fd;
  return false;
#else
  return fcntl(fd, F_GETFD) >= 0;
#endif
}

constexpr uint32_t kWatchable = kReadable | kWritable;

}  // namespace

int64_t LoopCore::watch(int fd, uint32_t interest) {
#ifdef _WIN32
  (void)fd;
  (void)interest;
  return -ENOTSUP;  // JavaScript has no descriptors of sockets there
#else
  // Checked here: poll and select would take a closed fd without a word.
  if (fd < 0 || !descriptor_open(fd)) return -EBADF;
  if (holds_fd(fd)) return -EEXIST;
  Id id;
  Handle* w = adopt(fd, Kind::kWatcher, State::kOpen, false, &id, false);
  if (!w) return -EMFILE;
  watchers_by_fd_[fd] = id;
  w->wanted = static_cast<uint8_t>(interest & kWatchable);
  // Registered now, so a backend's refusal (epoll: EPERM for a regular file)
  // is watch()'s result; adopt() marked it dirty, for the backend's commit().
  int rc = register_interest(id, w);
  if (rc < 0) {
    forget(id, w);
    return rc;
  }
  return static_cast<int64_t>(id.packed());
#endif
}

LoopCore::Handle* LoopCore::find_watcher(uint64_t packed, Id* out) {
  Handle* w = find(packed, out);
  return w && w->kind == Kind::kWatcher ? w : nullptr;
}

int LoopCore::watch_update(uint64_t packed, uint32_t interest) {
  Id id;
  Handle* w = find_watcher(packed, &id);
  if (!w) return -EBADF;
  if (w->fd < 0 || !descriptor_open(w->fd)) {
    forget(id, w);  // its report, if one is pending, is dropped with it
    return -EBADF;
  }
  w->wanted = static_cast<uint8_t>(interest & kWatchable);
  w->hup_seen = false;
  // Registered now for its result; dirty so the backend's commit() follows
  // before the loop blocks (poll, select and io_uring watch from there).
  mark_dirty(id, w);
  int rc = register_interest(id, w);
  if (rc == -ENOENT || rc == -EBADF) {
    // epoll or kqueue dropped the fd: it was closed, and the number (open
    // again) is another file's.
    forget(id, w);
    return -EBADF;
  }
  return rc;
}

int LoopCore::watch_keep_alive(uint64_t packed, bool keep_alive) {
  Id id;
  Handle* w = find_watcher(packed, &id);
  if (!w) return -EBADF;
  if (w->unref != keep_alive) return 0;
  w->unref = !keep_alive;
  if (keep_alive) {
    unref_watchers_--;
  } else {
    unref_watchers_++;
  }
  return 0;
}

int LoopCore::close_watcher(Id id, Handle* w) {
  forget(id, w);
  return 1;
}

void LoopCore::on_watcher_event(Id id, Handle* w, const PollEvent& event) {
  // Stopped or evicted earlier in this batch (kqueue reports a filter per event).
  if (w->fd < 0 || w->hup_seen) return;
  int32_t flags = 0;
  if (event.readable && (w->wanted & kReadable)) flags |= kWatchReadable;
  if (event.writable && (w->wanted & kWritable)) flags |= kWatchWritable;
  if (event.hangup || event.peer_closed) flags |= kWatchHangup;
  int error = 0;
  if (event.error) {
    // io_uring's failed poll says why itself: asked now, the fd may be
    // another socket's already.
    error = event.result < 0 ? -event.result : pending_error(w->fd);
    if (error == EBADF) {
      finish_watcher(id);
      return;
    }
    // A socket says what failed; a pipe or a tty says it at the next read
    // or write.
    if (error == 0 || error == ENOTSOCK) error = EIO;
    flags |= kWatchError;
  }
  if (flags & (kWatchHangup | kWatchError)) {
    w->hup_seen = true;  // stopped until watch_update()
    mark_dirty(id, w);
  }
  if (flags != 0) emit(kWatch, id, flags, error);
}

void LoopCore::evict_watcher(int fd) {
  auto it = watchers_by_fd_.find(fd);
  if (it == watchers_by_fd_.end()) return;
  Id id = it->second;
  // Now, before the socket that has the number registers; reported where
  // records may be emitted (this may run inside a JavaScript call).
  unwatch(table_.get(id));
  gone_.push_back(id);
}

void LoopCore::unwatch(Handle* w) {
  if (w->fd < 0) return;
  if (w->registered != kUnregistered) poller_->detach(w->fd);
  poller_->remove(w->fd);  // gives its claim back
  watchers_by_fd_.erase(w->fd);
  w->fd = -1;
  w->registered = kUnregistered;
}

void LoopCore::finish_watcher(Id id) {
  // Room for the record first, as release() makes it.
  if (record_count_ == record_capacity_) deliver();
  Handle* w = table_.get(id);
  if (!w) return;  // closed by JavaScript meanwhile
  forget(id, w, true);
  emit(kWatch, id, kWatchError | kWatchClosed, EBADF);
}

void LoopCore::report_gone() {
  std::vector<Id> gone;
  gone.swap(gone_);
  for (Id id : gone) finish_watcher(id);
}

}  // namespace reactor
