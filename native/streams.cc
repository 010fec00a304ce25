// Connections: connecting, reading into the slab, writing with a queue and
// watermarks, ending, closing, aborting, and their options.
#include <algorithm>
#include <cerrno>

#include "loop_core.h"
#include "platform.h"

namespace reactor {
namespace {

size_t total_length(const iovec* chunks, int count) {
  size_t total = 0;
  for (int i = 0; i < count; i++) total += chunks[i].iov_len;
  return total;
}

constexpr size_t kDiscardSize = 16 * 1024;

}  // namespace

// The new socket's place in the backend is claimed before it dials, so one
// select cannot watch never reaches the peer.
int64_t LoopCore::connect_tcp(const std::string& host, int port) {
  int claimed = -1;
  int fd = reactor::connect_tcp(host, port, [&](int s) { return claim_for(s, &claimed); });
  return adopt_outgoing(fd, claimed, true);
}

int64_t LoopCore::connect_unix(const std::string& path) {
  int claimed = -1;
  int fd = reactor::connect_unix(path, [&](int s) { return claim_for(s, &claimed); });
  return adopt_outgoing(fd, claimed, false);
}

bool LoopCore::claim_for(int fd, int* claimed) {
  if (!poller_->claim(fd)) return false;
  *claimed = fd;
  return true;
}

int64_t LoopCore::adopt_outgoing(int fd, int claimed, bool tcp) {
  if (fd < 0) {
    if (claimed >= 0) poller_->remove(claimed);  // the connect failed after its claim
    return fd;
  }
  Id id;
  Handle* c = adopt(fd, Kind::kStream, State::kConnecting, tcp, &id);
  if (!c) return -EMFILE;
  apply_defaults(c, ConnDefaults{}, SharedLimits{});
  c->visible = true;
  open_++;
  return static_cast<int64_t>(id.packed());
}

int64_t LoopCore::adopt_connection(int fd) {
  Id id;
  int error = 0;
  Handle* c = adopt_foreign(fd, Kind::kStream, false, &id, &error);
  if (!c) return error;
  apply_defaults(c, ConnDefaults{}, SharedLimits{});
  c->reading = true;
  c->visible = true;
  open_++;
  start_idle_clock(id, c);
  return static_cast<int64_t>(id.packed());
}

int64_t LoopCore::write(uint64_t packed, const iovec* chunks, int count) {
  Id id;
  Handle* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  if (c->state == State::kClosing || c->state == State::kLingering || c->end_requested ||
      c->close_requested) {
    return -EPIPE;
  }
  size_t total = total_length(chunks, count);
  if (c->error || total == 0) return static_cast<int64_t>(c->queue.size());
  if (c->idle_resets_on_write) restart_idle_clock(id, c);
  size_t sent = 0;
  if (c->state == State::kOpen && c->queue.empty()) {
    ssize_t n = socket_send(c->fd, chunks, count);
    if (n >= 0) {
      sent = static_cast<size_t>(n);
      stats_.bytes_out += sent;
    } else if (!would_block(static_cast<int>(-n))) {
      c->error = static_cast<int>(-n);
      mark_dirty(id, c);
      return 0;
    }
    if (sent == total) return 0;
  }
  if (c->queue.size() + (total - sent) > c->limits.get().max_write) {
    // A reader this slow would make memory grow without bound.
    set_reset_on_close(c->fd);
    forget(id, c);
    return -ENOBUFS;
  }
  c->queue.append(chunks, count, sent);
  if (c->queue.size() >= c->limits.get().high_water) c->drain_wanted = true;
  mark_dirty(id, c);
  return static_cast<int64_t>(c->queue.size());
}

int LoopCore::end(uint64_t packed) {
  Id id;
  Handle* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  if (c->peer_ended) return close(packed);  // both directions done
  if (c->end_requested || c->state == State::kClosing) return 0;
  c->end_requested = true;
  if (c->state == State::kOpen && c->queue.empty() && !c->error) {
    shutdown_write(c->fd);
    c->write_shut = true;
  }
  return 0;
}

// Closes a listener too (listeners.cc), and stops a watcher (watchers.cc).
int LoopCore::close(uint64_t packed) {
  Id id;
  Handle* c = find(packed, &id);
  if (!c || (c->kind == Kind::kStream && !c->visible)) return -EBADF;
  if (c->kind == Kind::kListener) return close_listener(id, c);
  if (c->kind == Kind::kWatcher) return close_watcher(id, c);
  if (c->queue.empty() || c->error) {
    forget(id, c);
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

int LoopCore::abort(uint64_t packed) {
  Id id;
  Handle* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  set_reset_on_close(c->fd);
  forget(id, c);
  return 1;
}

int LoopCore::set_reading(uint64_t packed, bool reading) {
  Id id;
  Handle* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  c->paused = !reading;
  if (reading) c->hup_seen = false;
  mark_dirty(id, c);
  if (reading) {
    resume_held(id, c);
  } else {
    stop_receiving(id, c);
  }
  return 0;
}

int LoopCore::set_idle_timeout(uint64_t packed, uint32_t ms, bool resets_on_write,
                               uint32_t grace_ms) {
  Id id;
  Handle* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  c->idle_ms = ms;
  c->idle_resets_on_write = resets_on_write;
  if (grace_ms != Loop::kKeep) {
    ConnLimits limits = c->limits.get();
    limits.grace_ms = grace_ms;
    if (!c->limits.assign(limits)) return -ENOMEM;
  }
  if (c->state == State::kOpen || c->state == State::kClosing) start_idle_clock(id, c);
  return 0;
}

int LoopCore::set_idle_notify(uint64_t packed, bool notify) {
  Id id;
  Handle* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  c->idle_notify = notify;
  return 0;
}

int LoopCore::set_write_limits(uint64_t packed, uint32_t high, uint32_t low, uint32_t max) {
  Id id;
  Handle* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  ConnLimits limits = c->limits.get();
  limits.high_water = high;
  limits.low_water = low;
  limits.max_write = max;
  if (!c->limits.assign(limits)) return -ENOMEM;
  if (c->queue.size() >= high) c->drain_wanted = true;
  return 0;
}

int LoopCore::set_no_delay(uint64_t packed, bool enable) {
  Id id;
  Handle* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  return c->tcp ? reactor::set_no_delay(c->fd, enable) : 0;
}

int LoopCore::set_keep_alive(uint64_t packed, bool enable, int idle_seconds, int interval_seconds,
                             int count) {
  Id id;
  Handle* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  if (!c->tcp) return 0;
  return reactor::set_keep_alive(c->fd, enable, idle_seconds, interval_seconds, count);
}

int LoopCore::address(uint64_t packed, bool peer, SocketAddress* out) {
  Id id;
  Handle* c = find(packed, &id);
  if (!c) return -EBADF;
  if (peer && c->kind == Kind::kStream && !proxied_.empty()) {
    auto client = proxied_.find(id.slot);
    if (client != proxied_.end() && client->second.family != SocketAddress::kNone) {
      *out = client->second;
      return 0;
    }
  }
  return socket_address(c->fd, peer, out);
}

int64_t LoopCore::queued_bytes(uint64_t packed) {
  Id id;
  Handle* c = find_stream(packed, &id);
  return c ? static_cast<int64_t>(c->queue.size()) : -EBADF;
}

// ---- readiness ----------------------------------------------------------------

void LoopCore::on_connect_ready(Id id, Handle* c) {
  int error = pending_error(c->fd);
  if (error) {
    release(id, c, error);
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
  start_idle_clock(id, c);
  // Writes and an end() issued while connecting go out now.
  if (!(c->queue.empty() ? after_drain(id, c) : flush(id, c))) return;
  emit(kConnected, id);
}

void LoopCore::on_stream_ready(Id id, Handle* c, const PollEvent& event) {
  if (c->error) {
    release(id, c, c->error);
    return;
  }
  if (event.error && !event.readable) {
    int error = pending_error(c->fd);
    release(id, c, error ? error : ECONNRESET);
    return;
  }
  if ((event.writable || event.error) && !c->queue.empty() && !flush(id, c)) return;
  bool can_read = c->reading && !c->paused;
  if (can_read && (event.readable || event.hangup || event.error)) {
    read_once(id, c);
  } else if (event.hangup && c->paused && c->reading) {
    // Unread bytes may wait behind the hang-up: keep them for resume().
    c->hup_seen = true;
    mark_dirty(id, c);
  } else if (event.hangup && !c->reading) {
    // Both directions are finished and nothing more will be read.
    release(id, c, 0);
  }
}

bool LoopCore::read_once(Id id, Handle* c) {
  if (c->state == State::kLingering) {
    // Nobody wants these bytes; reading them lets the peer's close arrive.
    if (discard_.empty()) discard_.resize(kDiscardSize);
    ssize_t n = socket_recv(c->fd, discard_.data(), discard_.size());
    if (n > 0 || (n < 0 && would_block(static_cast<int>(-n)))) return true;
    if (n < 0) {
      release(id, c, static_cast<int>(-n));
      return false;
    }
    c->peer_ended = true;
    c->reading = false;
    mark_dirty(id, c);
    if (!c->write_shut) return true;  // after_drain closes it once flushed
    release(id, c, 0);
    return false;
  }
  if (slab_.size - slab_used_ < limits_.max_read) {
    start_new_slab();
    c = table_.get(id);
    if (!c) return false;
    if (slab_.size < limits_.max_read) return true;  // no memory now; still readable next wake-up
  }
  size_t room = std::min(limits_.max_read, slab_.size - slab_used_);
  ssize_t n = socket_recv(c->fd, slab_.data + slab_used_, room);
  if (n > 0) {
    stats_.bytes_in += static_cast<uint64_t>(n);
    if (c->idle_ms) restart_idle_clock(id, c);
    const uint8_t* data = slab_.data + slab_used_;
    slab_used_ += static_cast<size_t>(n);
    if (c->http) return http_received(id, c, data, static_cast<size_t>(n));
    emit(kData, id, static_cast<int32_t>(data - slab_.data), static_cast<int32_t>(n));
    return true;
  }
  if (n < 0 && would_block(static_cast<int>(-n))) return true;
  if (n < 0) {
    release(id, c, static_cast<int>(-n));
    return false;
  }
  c->peer_ended = true;
  c->reading = false;
  if (c->write_shut) {
    release(id, c, 0);  // we had ended already: the connection is complete
    return false;
  }
  mark_dirty(id, c);
  emit(kEof, id);
  return true;
}

bool LoopCore::flush(Id id, Handle* c) {
  iovec chunk{const_cast<uint8_t*>(c->queue.data()), c->queue.size()};
  ssize_t n = socket_send(c->fd, &chunk, 1);
  if (n < 0) {
    if (would_block(static_cast<int>(-n))) return true;
    release(id, c, static_cast<int>(-n));
    return false;
  }
  stats_.bytes_out += static_cast<uint64_t>(n);
  if (n > 0 && c->idle_resets_on_write) restart_idle_clock(id, c);
  c->queue.consume(static_cast<size_t>(n));
  if (c->drain_wanted && c->queue.size() <= c->limits.get().low_water) {
    c->drain_wanted = false;
    emit(kDrain, id);
    // JavaScript may have closed it while handling the record.
    c = table_.get(id);
    if (!c) return false;
  }
  if (!c->queue.empty()) return true;
  mark_dirty(id, c);
  return after_drain(id, c);
}

// The queue just emptied: finish a pending close or end.
bool LoopCore::after_drain(Id id, Handle* c) {
  if (c->state == State::kClosing) {
    release(id, c, 0);
    return false;
  }
  if (c->end_requested && !c->write_shut) {
    shutdown_write(c->fd);
    c->write_shut = true;
    if (c->peer_ended) {
      release(id, c, 0);
      return false;
    }
  }
  return true;
}

}  // namespace reactor
