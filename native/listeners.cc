// Listening sockets and admission: every accepted connection is served,
// parked (over the cap, in its listener's FIFO) or rejected; accepting backs
// off after EMFILE and stops at a cap that leaves clients in the backlog.
#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "loop_core.h"
#include "platform.h"

namespace reactor {

// ---- listeners ----------------------------------------------------------------

// A listening socket joins the table with its Listener record (and the Unix
// path it created, removed when it closes).
int64_t LoopCore::add_listener(int fd, bool tcp, const std::string& unix_path) {
  auto listening = std::unique_ptr<Listener>(new (std::nothrow) Listener);
  Id id;
  Handle* l = listening ? adopt(fd, Kind::kListener, State::kOpen, tcp, &id) : nullptr;
  if (!l) {
    if (!listening) close_socket(fd);
    if (!unix_path.empty()) std::remove(unix_path.c_str());
    return -EMFILE;
  }
  listening->unix_path = unix_path;
  l->record = std::move(listening);
  fd_table_.expect_connections();
  return static_cast<int64_t>(id.packed());
}

int64_t LoopCore::listen_tcp(const std::string& host, int port, const ListenOptions& options) {
  int fd = reactor::listen_tcp(host, port, options);
  return fd < 0 ? fd : add_listener(fd, true, std::string());
}

int64_t LoopCore::listen_unix(const std::string& path, const ListenOptions& options) {
  int fd = reactor::listen_unix(path, options);
  return fd < 0 ? fd : add_listener(fd, false, path);
}

int LoopCore::configure_listener(uint64_t packed, const AdmissionPolicy& policy,
                                 const ConnDefaults& defaults) {
  Id id = Id::unpack(packed);
  Listener* listener = listener_at(id);
  if (!listener) return -EBADF;
  listener->admission.policy = policy;
  if (!listener->limits.assign(defaults.limits)) return -ENOMEM;
  listener->admission.defaults = defaults;
  mark_dirty(id, table_.get(id));  // waiting in the backlog changes how it accepts
  return 0;
}

int LoopCore::listener_counts(uint64_t packed, uint32_t* open, uint32_t* queued) {
  Admission* admission = admission_of(Id::unpack(packed));
  if (!admission) return -EBADF;
  *open = admission->open;
  *queued = admission->queued;
  return 0;
}

int64_t LoopCore::adopt_listener(int fd, bool require_tcp) {
  auto listening = std::unique_ptr<Listener>(new (std::nothrow) Listener);
  if (!listening) return -ENOMEM;
  Id id;
  int error = 0;
  Handle* l = adopt_foreign(fd, Kind::kListener, require_tcp, &id, &error);
  if (!l) return error;
  l->record = std::move(listening);  // no unix_path: the path is not ours to remove
  fd_table_.expect_connections();
  return static_cast<int64_t>(id.packed());
}

int LoopCore::close_listener(Id id, Handle* l) {
  // Nobody will serve the parked connections now.
  Admission& admission = l->listening()->admission;
  while (!admission.parked.empty()) {
    Id parked = admission.parked.front();
    admission.parked.pop_front();
    Handle* p = table_.get(parked);
    if (p && p->state == State::kParked) reject(parked, p, admission.policy);
  }
  if (admission.policy.proxy_protocol) drop_proxy_headers(id);
  if (l->listening()->http) http_close_idle(id);
  forget(id, l);
  return 1;
}

// ---- admission --------------------------------------------------------------

void LoopCore::on_listener_ready(Id id) {
  for (int i = 0; i < limits_.accepts_per_wake; i++) {
    // Each emit may run JavaScript, which may close the listener.
    Handle* l = table_.get(id);
    if (!l) return;
    Listener* listener = l->listening();
    if (listener->backoff) return;
    if (listener->admission.holds_back()) {
      listener->at_cap = true;  // until one of its connections closes
      mark_dirty(id, l);
      return;
    }
    int fd = accept_connection(l->fd);
    if (fd < 0) {
      if (fd == -EINTR || fd == -ECONNABORTED) continue;
      if (fd == -EMFILE || fd == -ENFILE) start_backoff(id, listener);
      return;  // EAGAIN, or an error the next wake-up will meet again
    }
    take_accepted(id, l->tcp, &listener->admission, fd);
  }
}

// A socket a listener accepted (by accept(), or by io_uring's multishot accept).
void LoopCore::take_accepted(Id listener, bool tcp, Admission* admission, int fd) {
  stats_.accepted++;
  backoff_ms_ = limits_.backoff_first_ms;
  // Asked here so a refusal can be told to the client; adopt() asks again.
  if (!poller_->claim(fd)) {
    refuse_unwatchable(fd, admission->policy);
    return;
  }
  if (tcp) reactor::set_no_delay(fd, true);
  admit(listener, admission, fd);
}

void LoopCore::admit(Id listener, Admission* admission, int fd) {
  Handle* l = table_.get(listener);
  Id id;
  Handle* c = adopt(fd, Kind::kStream, State::kOpen, l->tcp, &id);
  if (!c) return;
  apply_defaults(c, admission->defaults, l->listening()->limits);
  c->listener = listener;
  c->reading = false;
  if (admission->policy.proxy_protocol) {
    await_proxy_header(id, c, admission->policy);
    return;
  }
  admit_adopted(id, c, listener, admission);
}

void LoopCore::admit_adopted(Id id, Handle* c, Id listener, Admission* admission) {
  if (admission->limits_peers()) {
    PeerKey key;
    if (peer_key(id, *c, &key)) {
      if (admission->peer_full(key)) {
        c->listener = Id{kMaxSlots, 0};  // never counted against the listener
        reject(id, c, admission->policy);
        return;
      }
      admission->track_peer(id.slot, key);
    }
  }
  if (admission->has_room()) {
    serve(id, c, listener, admission);
  } else if (admission->can_park()) {
    park(id, c, admission);
  } else {
    reject(id, c, admission->policy);
  }
}

bool LoopCore::peer_key(Id id, const Handle& c, PeerKey* key) {
  if (!proxied_.empty()) {
    auto client = proxied_.find(id.slot);
    if (client != proxied_.end() && client->second.family != SocketAddress::kNone) {
      return address_ip(client->second, key->bytes) == 0;
    }
  }
  return peer_ip(c.fd, key->bytes) == 0;
}

void LoopCore::serve(Id id, Handle* c, Id listener, Admission* admission) {
  c->state = State::kOpen;
  c->reading = true;
  c->visible = true;
  c->hup_seen = false;
  open_++;
  admission->open++;
  start_idle_clock(id, c);
  mark_dirty(id, c);
  // JavaScript meets an HTTP connection with its first request.
  Listener* record = listener_at(listener);
  c->http = record && record->http;
  if (c->http) return;
  emit(kAccepted, id, static_cast<int32_t>(listener.slot), static_cast<int32_t>(listener.gen));
}

void LoopCore::park(Id id, Handle* c, Admission* admission) {
  c->state = State::kParked;
  admission->queued++;
  queued_++;
  admission->parked.push_back(id);
  if (admission->policy.queue_timeout_ms > 0) {
    deadlines_.set(id.slot, deadline_after(admission->policy.queue_timeout_ms));
  }
  mark_dirty(id, c);
}

void LoopCore::leave_listener(Id id, Handle* c) {
  Listener* listener = listener_at(c->listener);
  if (!listener) return;
  Admission& admission = listener->admission;
  if (c->visible) {
    admission.open--;
    // Served later, at a point where records may be emitted.
    if (admission.queued > 0) to_serve_.push_back(c->listener);
    if (listener->at_cap) {
      listener->at_cap = false;
      mark_dirty(c->listener, table_.get(c->listener));
    }
  }
  if (admission.limits_peers()) admission.forget_peer(id.slot);
}

// Takes a parked connection out of its listener's counts; its entry in the
// FIFO is skipped when it reaches the front.
void LoopCore::leave_queue(Id id, Handle* c) {
  queued_--;
  deadlines_.clear(id.slot);
  Admission* admission = admission_of(c->listener);
  if (!admission) return;
  admission->queued--;
  // Keep the FIFO from filling with stale entries when clients keep leaving
  // a queue that does not move.
  if (admission->parked.size() > 2 * static_cast<size_t>(admission->queued) + 64) {
    std::deque<Id> live;
    for (Id parked : admission->parked) {
      Handle* p = table_.get(parked);
      if (p && p->state == State::kParked && parked.slot != id.slot) live.push_back(parked);
    }
    admission->parked.swap(live);
  }
}

// A rejected connection is told with a reset, or with the canned bytes and a
// graceful close. Lingering until the peer closes keeps its unread request
// from turning our close into a reset that would destroy the reply.
void LoopCore::reject(Id id, Handle* c, const AdmissionPolicy& policy) {
  stats_.rejected++;
  if (c->state == State::kParked) {
    leave_queue(id, c);
    c->state = State::kOpen;
  }
  if (Admission* admission = admission_of(c->listener)) {
    if (admission->limits_peers()) admission->forget_peer(id.slot);
  }
  c->listener = Id{kMaxSlots, 0};  // no longer counted against the listener
  if (policy.overflow == Overflow::kReset) {
    set_reset_on_close(c->fd);
    forget(id, c);
    return;
  }
  if (!policy.overflow_bytes.empty()) {
    iovec reply{const_cast<char*>(policy.overflow_bytes.data()), policy.overflow_bytes.size()};
    ssize_t n = socket_send(c->fd, &reply, 1);
    size_t sent = n > 0 ? static_cast<size_t>(n) : 0;
    stats_.bytes_out += sent;
    c->queue.append(&reply, 1, sent);
  }
  linger(id, c, limits_.linger_ms);
}

// A connection the backend cannot watch (select beyond what an fd_set holds) cannot be
// parked or lingered on: it is told at once, as well as a non-blocking send
// can, and closed.
void LoopCore::refuse_unwatchable(int fd, const AdmissionPolicy& policy) {
  stats_.rejected++;
  if (policy.overflow == Overflow::kReset) {
    set_reset_on_close(fd);
  } else if (!policy.overflow_bytes.empty()) {
    iovec reply{const_cast<char*>(policy.overflow_bytes.data()), policy.overflow_bytes.size()};
    ssize_t n = socket_send(fd, &reply, 1);
    if (n > 0) stats_.bytes_out += static_cast<uint64_t>(n);
    shutdown_write(fd);
  }
  close_socket(fd);
}

void LoopCore::serve_waiting() {
  std::vector<Id> listeners;
  listeners.swap(to_serve_);
  for (Id listener : listeners) {
    for (;;) {
      Admission* admission = admission_of(listener);
      if (!admission || admission->parked.empty() ||
          admission->open >= admission->policy.max_connections) {
        break;
      }
      Id id = admission->parked.front();
      admission->parked.pop_front();
      Handle* c = table_.get(id);
      if (!c || c->state != State::kParked) continue;  // left the queue earlier
      leave_queue(id, c);
      serve(id, c, listener, admission);
    }
  }
}

// A parked connection is watched only for its client going away: a FIN or a
// reset. A FIN cannot tell a client that left from one that half-closed after
// its request; leaving is by far the common case (a browser giving up, a
// long-poll timing out), so both are discarded.
void LoopCore::on_parked_event(Id id, Handle* c, const PollEvent& event) {
  if (!event.error && !event.hangup && !event.peer_closed) {
    // Only readable (a backend without kPeerClosed): bytes, or an EOF? Bytes
    // stay for when it is served, and watching a socket that stays readable
    // would spin, so its leaving goes unnoticed from here on.
    char byte;
    ssize_t n = socket_recv(c->fd, &byte, 1, true);
    if (n > 0 || (n < 0 && would_block(static_cast<int>(-n)))) {
      c->hup_seen = true;
      mark_dirty(id, c);
      return;
    }
  }
  stats_.abandoned++;
  forget(id, c);
}

void LoopCore::start_backoff(Id id, Listener* listener) {
  stats_.emfile++;
  listener->backoff = true;
  mark_dirty(id, table_.get(id));
  if (std::find(backed_off_.begin(), backed_off_.end(), id) == backed_off_.end()) {
    backed_off_.push_back(id);
  }
  deadlines_.set(id.slot, deadline_after(backoff_ms_));
  backoff_ms_ = std::min(backoff_ms_ * 2, limits_.backoff_max_ms);
}

void LoopCore::end_backoffs() {
  std::vector<Id> listeners;
  listeners.swap(backed_off_);
  for (Id id : listeners) {
    Listener* listener = listener_at(id);
    if (!listener || !listener->backoff) continue;
    listener->backoff = false;
    deadlines_.clear(id.slot);
    mark_dirty(id, table_.get(id));
  }
}

}  // namespace reactor
