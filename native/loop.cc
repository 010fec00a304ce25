#include "loop.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace reactor {
namespace {

bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK; }

// Sends as much of the chunks as the socket takes. Returns bytes sent or -errno.
ssize_t send_chunks(int fd, const iovec* chunks, int count) {
  msghdr message{};
  message.msg_iov = const_cast<iovec*>(chunks);
  message.msg_iovlen = static_cast<size_t>(count);
  ssize_t n;
  do {
    // MSG_NOSIGNAL: a write to a reset peer is an error, never SIGPIPE.
    n = ::sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

size_t total_length(const iovec* chunks, int count) {
  size_t total = 0;
  for (int i = 0; i < count; i++) total += chunks[i].iov_len;
  return total;
}

}  // namespace

Loop::Loop(std::unique_ptr<Poller> poller, Sink* sink, Record* records, size_t record_capacity,
           LoopLimits limits)
    : poller_(std::move(poller)),
      sink_(sink),
      records_(records),
      record_capacity_(record_capacity),
      limits_(limits),
      events_(static_cast<size_t>(limits.events_per_wake)) {
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

Loop::~Loop() {
  close_all();
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

uint64_t Loop::now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// ---- table ---------------------------------------------------------------

int64_t Loop::adopt(int fd, Kind kind, State state, bool tcp) {
  Id id;
  if (!table_.allocate(&id)) {
    ::close(fd);
    return -EMFILE;
  }
  Conn* c = table_.get(id);
  c->fd = fd;
  c->kind = kind;
  c->state = state;
  c->tcp = tcp;
  c->reading = state == State::kOpen;
  mark_dirty(id, c);
  return static_cast<int64_t>(id.packed());
}

Loop::Conn* Loop::find(uint64_t packed, Id* out) {
  *out = Id::unpack(packed);
  return table_.get(*out);
}

void Loop::mark_dirty(Id id, Conn* c) {
  if (c->dirty) return;
  c->dirty = true;
  dirty_.push_back(id);
}

uint32_t Loop::desired_interest(const Conn& c) const {
  if (c.kind == Kind::kListener) return kReadable;
  if (c.state == State::kConnecting) return kWritable;
  uint32_t interest = c.reading ? kReadable : kNone;
  // A socket with a pending error reports writable at once, which is how the
  // error gets reported from inside a batch.
  if (!c.queue.empty() || c.error) interest |= kWritable;
  return interest;
}

void Loop::apply_interest() {
  // Entries may be appended while we walk (a failure releases nothing here).
  for (size_t i = 0; i < dirty_.size(); i++) {
    Id id = dirty_[i];
    Conn* c = table_.get(id);
    if (!c) continue;
    c->dirty = false;
    uint32_t want = desired_interest(*c);
    if (c->registered == want) continue;
    int rc = c->registered == kUnregistered ? poller_->add(c->fd, id.packed(), want)
                                            : poller_->modify(c->fd, id.packed(), want);
    if (rc == 0) c->registered = static_cast<uint8_t>(want);
  }
  dirty_.clear();
}

void Loop::release(Id id, Conn* c, bool report, int error) {
  poller_->remove(c->fd);
  ::close(c->fd);
  if (c->kind == Kind::kListener) {
    auto path = unix_paths_.find(id.slot);
    if (path != unix_paths_.end()) {
      ::unlink(path->second.c_str());
      unix_paths_.erase(path);
    }
  }
  table_.release(id);
  if (report) emit(kClosed, id, error);
}

void Loop::close_all() {
  for (uint32_t slot = 0; slot < table_.capacity(); slot++) {
    Id id;
    if (table_.live_at(slot, &id)) release(id, table_.get(id), false, 0);
  }
  dirty_.clear();
}

// ---- listeners and connections ---------------------------------------------

int64_t Loop::listen_tcp(const std::string& host, int port, const ListenOptions& options) {
  int fd = reactor::listen_tcp(host, port, options);
  return fd < 0 ? fd : adopt(fd, Kind::kListener, State::kOpen, true);
}

int64_t Loop::listen_unix(const std::string& path, const ListenOptions& options) {
  int fd = reactor::listen_unix(path, options);
  if (fd < 0) return fd;
  int64_t id = adopt(fd, Kind::kListener, State::kOpen, false);
  if (id >= 0) unix_paths_[Id::unpack(static_cast<uint64_t>(id)).slot] = path;
  return id;
}

int64_t Loop::connect_tcp(const std::string& host, int port) {
  int fd = reactor::connect_tcp(host, port);
  return fd < 0 ? fd : adopt(fd, Kind::kStream, State::kConnecting, true);
}

int64_t Loop::connect_unix(const std::string& path) {
  int fd = reactor::connect_unix(path);
  return fd < 0 ? fd : adopt(fd, Kind::kStream, State::kConnecting, false);
}

int64_t Loop::write(uint64_t packed, const iovec* chunks, int count) {
  Id id;
  Conn* c = find(packed, &id);
  if (!c || c->kind != Kind::kStream) return -EBADF;
  if (c->state == State::kClosing || c->end_requested || c->close_requested) return -EPIPE;
  size_t total = total_length(chunks, count);
  if (c->error || total == 0) return static_cast<int64_t>(c->queue.size());
  size_t sent = 0;
  if (c->state == State::kOpen && c->queue.empty()) {
    ssize_t n = send_chunks(c->fd, chunks, count);
    if (n >= 0) {
      sent = static_cast<size_t>(n);
    } else if (!would_block(static_cast<int>(-n))) {
      c->error = static_cast<int>(-n);
      mark_dirty(id, c);
      return 0;
    }
    if (sent == total) return 0;
  }
  c->queue.append(chunks, count, sent);
  mark_dirty(id, c);
  return static_cast<int64_t>(c->queue.size());
}

int Loop::end(uint64_t packed) {
  Id id;
  Conn* c = find(packed, &id);
  if (!c || c->kind != Kind::kStream) return -EBADF;
  if (c->peer_ended) return close(packed);  // both directions done
  if (c->end_requested || c->state == State::kClosing) return 0;
  c->end_requested = true;
  if (c->state == State::kOpen && c->queue.empty() && !c->error) {
    ::shutdown(c->fd, SHUT_WR);
    c->write_shut = true;
  }
  return 0;
}

int Loop::close(uint64_t packed) {
  Id id;
  Conn* c = find(packed, &id);
  if (!c) return -EBADF;
  if (c->kind == Kind::kListener || c->queue.empty() || c->error) {
    release(id, c, false, 0);
    return 1;
  }
  c->reading = false;
  if (c->state == State::kConnecting) {
    c->close_requested = true;  // the queued bytes go out once connected
  } else {
    c->state = State::kClosing;
    mark_dirty(id, c);
  }
  return 0;
}

int Loop::abort(uint64_t packed) {
  Id id;
  Conn* c = find(packed, &id);
  if (!c) return -EBADF;
  if (c->kind == Kind::kStream) set_reset_on_close(c->fd);
  release(id, c, false, 0);
  return 1;
}

int Loop::set_no_delay(uint64_t packed, bool enable) {
  Id id;
  Conn* c = find(packed, &id);
  if (!c || c->kind != Kind::kStream) return -EBADF;
  return c->tcp ? reactor::set_no_delay(c->fd, enable) : 0;
}

int Loop::set_keep_alive(uint64_t packed, bool enable, int idle_seconds, int interval_seconds,
                         int count) {
  Id id;
  Conn* c = find(packed, &id);
  if (!c || c->kind != Kind::kStream) return -EBADF;
  if (!c->tcp) return 0;
  return reactor::set_keep_alive(c->fd, enable, idle_seconds, interval_seconds, count);
}

int Loop::address(uint64_t packed, bool peer, SocketAddress* out) {
  Id id;
  Conn* c = find(packed, &id);
  if (!c) return -EBADF;
  return socket_address(c->fd, peer, out);
}

int64_t Loop::queued_bytes(uint64_t packed) {
  Id id;
  Conn* c = find(packed, &id);
  return c ? static_cast<int64_t>(c->queue.size()) : -EBADF;
}

// ---- timers ---------------------------------------------------------------

int64_t Loop::timer_start(uint64_t delay_ms) {
  Id id;
  if (!timers_.start(now_ms() + delay_ms, &id)) return -ENOMEM;
  return static_cast<int64_t>(id.packed());
}

bool Loop::timer_cancel(uint64_t id) { return timers_.cancel(Id::unpack(id)); }

bool Loop::timer_reset(uint64_t id, uint64_t delay_ms) {
  return timers_.reset(Id::unpack(id), now_ms() + delay_ms);
}

void Loop::run_timers() {
  uint64_t now = now_ms();
  Id id;
  while (timers_.pop_expired(now, &id)) emit(kTimer, id);
  deliver();
}

// ---- the wake-up ----------------------------------------------------------

int Loop::poll() {
  apply_interest();
  int n = poller_->wait(events_.data(), limits_.events_per_wake, 0);
  for (int i = 0; i < n; i++) on_event(events_[i]);
  deliver();
  apply_interest();
  return n;
}

void Loop::prepare_wait() { apply_interest(); }

void Loop::on_event(const PollEvent& event) {
  Id id = Id::unpack(event.token);
  Conn* c = table_.get(id);
  if (!c) return;  // closed earlier in this batch
  if (c->kind == Kind::kListener) {
    on_listener_ready(id);
  } else if (c->state == State::kConnecting) {
    on_connect_ready(id, c);
  } else {
    on_stream_ready(id, c, event);
  }
}

void Loop::on_listener_ready(Id listener) {
  for (int i = 0; i < limits_.accepts_per_wake; i++) {
    // Each emit may run JavaScript, which may close the listener.
    Conn* l = table_.get(listener);
    if (!l) return;
    int fd = accept_connection(l->fd);
    if (fd < 0) {
      if (fd == -EINTR || fd == -ECONNABORTED) continue;
      if (fd == -EMFILE || fd == -ENFILE) handle_accept_exhaustion(l->fd);
      return;  // EAGAIN, or an error the next wake-up will meet again
    }
    bool tcp = l->tcp;
    if (tcp) reactor::set_no_delay(fd, true);
    int64_t packed = adopt(fd, Kind::kStream, State::kOpen, tcp);
    if (packed < 0) continue;
    emit(kAccepted, Id::unpack(static_cast<uint64_t>(packed)), static_cast<int32_t>(listener.slot),
         static_cast<int32_t>(listener.gen));
  }
}

// Out of descriptors: release the reserve, accept and drop what waits so
// clients see a close instead of hanging, then take the reserve back. A
// level-triggered listener would otherwise wake us forever.
void Loop::handle_accept_exhaustion(int listen_fd) {
  if (reserve_fd_ < 0) return;
  ::close(reserve_fd_);
  reserve_fd_ = -1;
  for (int i = 0; i < limits_.accepts_per_wake; i++) {
    int fd = accept_connection(listen_fd);
    if (fd < 0) break;
    ::close(fd);
  }
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void Loop::on_connect_ready(Id id, Conn* c) {
  int error = pending_error(c->fd);
  if (error) {
    release(id, c, true, error);
    return;
  }
  mark_dirty(id, c);
  if (c->close_requested) {
    // Closed while connecting: deliver what was queued, then kClosed(0).
    c->state = State::kClosing;
    flush(id, c);
    return;
  }
  c->state = State::kOpen;
  c->reading = true;
  // Writes and an end() issued while connecting go out now.
  if (!(c->queue.empty() ? after_drain(id, c) : flush(id, c))) return;
  emit(kConnected, id);
}

void Loop::on_stream_ready(Id id, Conn* c, const PollEvent& event) {
  if (c->error) {
    release(id, c, true, c->error);
    return;
  }
  if (event.error && !event.readable) {
    int error = pending_error(c->fd);
    release(id, c, true, error ? error : ECONNRESET);
    return;
  }
  if ((event.writable || event.error) && !c->queue.empty() && !flush(id, c)) return;
  if (c->reading && (event.readable || event.hangup || event.error)) {
    read_once(id, c);
  } else if (event.hangup && !c->reading) {
    // Both directions are finished and nothing more will be read.
    release(id, c, true, 0);
  }
}

bool Loop::read_once(Id id, Conn* c) {
  if (slab_.size - slab_used_ < limits_.max_read) {
    deliver();  // records still point into the old slab
    slab_ = sink_->fresh_slab();
    slab_used_ = 0;
    undelivered_from_ = 0;
    c = table_.get(id);
    if (!c) return false;
    if (slab_.size < limits_.max_read) return true;  // no memory now; still readable next wake-up
  }
  size_t room = std::min(limits_.max_read, slab_.size - slab_used_);
  ssize_t n;
  do {
    n = ::recv(c->fd, slab_.data + slab_used_, room, 0);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    emit(kData, id, static_cast<int32_t>(slab_used_), static_cast<int32_t>(n));
    slab_used_ += static_cast<size_t>(n);
    return true;
  }
  if (n < 0 && would_block(errno)) return true;
  if (n < 0) {
    release(id, c, true, errno);
    return false;
  }
  c->peer_ended = true;
  c->reading = false;
  if (c->write_shut) {
    release(id, c, true, 0);  // we had ended already: the connection is complete
    return false;
  }
  mark_dirty(id, c);
  emit(kEof, id);
  return true;
}

bool Loop::flush(Id id, Conn* c) {
  iovec chunk{const_cast<uint8_t*>(c->queue.data()), c->queue.size()};
  ssize_t n = send_chunks(c->fd, &chunk, 1);
  if (n < 0) {
    if (would_block(static_cast<int>(-n))) return true;
    release(id, c, true, static_cast<int>(-n));
    return false;
  }
  c->queue.consume(static_cast<size_t>(n));
  if (!c->queue.empty()) return true;
  mark_dirty(id, c);
  return after_drain(id, c);
}

// The queue just emptied: finish a pending close or end.
bool Loop::after_drain(Id id, Conn* c) {
  if (c->state == State::kClosing) {
    release(id, c, true, 0);
    return false;
  }
  if (c->end_requested && !c->write_shut) {
    ::shutdown(c->fd, SHUT_WR);
    c->write_shut = true;
    if (c->peer_ended) {
      release(id, c, true, 0);
      return false;
    }
  }
  return true;
}

// ---- records ----------------------------------------------------------------

void Loop::emit(RecordKind kind, Id id, int32_t a, int32_t b) {
  if (record_count_ == record_capacity_) deliver();
  records_[record_count_++] = {kind, static_cast<int32_t>(id.slot), static_cast<int32_t>(id.gen), a,
                               b};
}

void Loop::deliver() {
  if (record_count_ == 0) return;
  size_t count = record_count_;
  record_count_ = 0;
  uint8_t* slab = slab_.data;
  size_t from = undelivered_from_;
  bool released = sink_->deliver(records_, count);
  if (released && slab == slab_.data) slab_used_ = from;  // nobody kept those bytes
  undelivered_from_ = slab_used_;
}

}  // namespace reactor
