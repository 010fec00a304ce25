#include "loop.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "platform.h"

namespace reactor {
namespace {

bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK; }

size_t total_length(const iovec* chunks, int count) {
  size_t total = 0;
  for (int i = 0; i < count; i++) total += chunks[i].iov_len;
  return total;
}

constexpr size_t kDiscardSize = 16 * 1024;

// steady_clock is CLOCK_MONOTONIC on Linux and QueryPerformanceCounter on
// Windows.
uint64_t monotonic_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

Loop::Loop(std::unique_ptr<Poller> poller, Sink* sink, Record* records, size_t record_capacity,
           LoopLimits limits)
    : poller_(std::move(poller)),
      sink_(sink),
      records_(records),
      record_capacity_(record_capacity),
      limits_(limits),
      events_(static_cast<size_t>(limits.events_per_wake)),
      backoff_ms_(limits.backoff_first_ms) {}

Loop::~Loop() { close_all(); }

uint64_t Loop::now_ms() { return monotonic_ns() / 1000000; }

// The clock rounded up to the next millisecond. Every deadline counts from
// it, so none comes before its full delay has passed (now_ms() rounds down).
uint64_t Loop::start_ms() { return (monotonic_ns() + 999999) / 1000000; }

uint64_t Loop::deadline_after(uint64_t delay_ms) {
  return delay_ms == 0 ? now_ms() : start_ms() + delay_ms;
}

// ---- table ---------------------------------------------------------------

Loop::Conn* Loop::adopt(int fd, Kind kind, State state, bool tcp, Id* id, bool close_on_failure) {
  if (!poller_->claim(fd)) {
    if (close_on_failure) close_socket(fd);
    return nullptr;
  }
  if (!table_.allocate(id)) {
    poller_->remove(fd);  // gives its claim back
    if (close_on_failure) close_socket(fd);
    return nullptr;
  }
  Conn* c = table_.get(*id);
  c->fd = fd;
  c->kind = kind;
  c->state = state;
  c->tcp = tcp;
  mark_dirty(*id, c);
  return c;
}

void Loop::apply_defaults(Conn* c, const ConnDefaults& defaults) {
  c->idle_ms = defaults.idle_ms;
  c->grace_ms = defaults.grace_ms;
  c->idle_resets_on_write = defaults.idle_resets_on_write;
  c->high_water = defaults.high_water;
  c->low_water = defaults.low_water;
  c->max_write = defaults.max_write;
}

Loop::Conn* Loop::find(uint64_t packed, Id* out) {
  *out = Id::unpack(packed);
  return table_.get(*out);
}

// A connection JavaScript may act on (not a listener, parked or unknown one).
Loop::Conn* Loop::find_stream(uint64_t packed, Id* out) {
  Conn* c = find(packed, out);
  return c && c->kind == Kind::kStream && c->visible ? c : nullptr;
}

Admission* Loop::admission_of(Id listener) {
  Conn* l = table_.get(listener);
  if (!l || l->kind != Kind::kListener) return nullptr;
  auto it = admissions_.find(listener.slot);
  return it == admissions_.end() ? nullptr : &it->second;
}

void Loop::mark_dirty(Id id, Conn* c) {
  if (c->dirty) return;
  c->dirty = true;
  dirty_.push_back(id);
}

uint32_t Loop::desired_interest(const Conn& c) const {
  if (c.kind == Kind::kListener) {
    if (c.backoff || c.at_cap) return kNone;
    return poller_->receives() && !c.backlog_cap ? kAccept : kReadable;
  }
  if (c.state == State::kConnecting) return kWritable;
  if (c.state == State::kParked) {
    if (c.hup_seen) return kNone;
    return poller_->reports_peer_closed() ? kPeerClosed : kReadable;
  }
  // A paused connection whose peer hung up would be reported at every wait.
  if (c.paused && c.hup_seen) return kDetached;
  uint32_t interest = kNone;
  if (c.reading && !c.paused) {
    // Lingering input is discarded: readiness and a read into discard_.
    interest = poller_->receives() && c.state != State::kLingering ? kReceive : kReadable;
  }
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
    if (want == kDetached) {
      if (poller_->detach(c->fd) == 0) c->registered = kUnregistered;
      continue;
    }
    int rc = c->registered == kUnregistered ? poller_->add(c->fd, id.packed(), want)
                                            : poller_->modify(c->fd, id.packed(), want);
    if (rc == 0) c->registered = static_cast<uint8_t>(want);
  }
  dirty_.clear();
}

void Loop::release(Id id, Conn* c, int error, CloseReason why) {
  if (c->visible && record_count_ == record_capacity_) {
    // Room for the record first, so that the slot cannot be reused by the
    // delivery that makes room while its kClosed is not yet written.
    deliver();
    c = table_.get(id);
    if (!c) return;  // JavaScript closed it meanwhile
  }
  bool report = c->visible;
  if (why == kReasonNone && c->reaped) why = kReasonIdle;
  forget(id, c, report);
  if (report) emit(kClosed, id, error, why);
}

void Loop::forget(Id id, Conn* c, bool reported) {
  deadlines_.clear(id.slot);
  if (c->kind == Kind::kListener) {
    auto it = admissions_.find(id.slot);
    if (it != admissions_.end()) {
      if (!it->second.unix_path.empty()) std::remove(it->second.unix_path.c_str());
      admissions_.erase(it);
    }
  } else {
    if (c->visible) open_--;
    if (c->state == State::kParked) leave_queue(id, c);
    if (!held_.empty()) held_.erase(id.slot);
    if (Admission* admission = admission_of(c->listener)) {
      if (c->visible) {
        admission->open--;
        // Served later, at a point where records may be emitted.
        if (admission->queued > 0) to_serve_.push_back(c->listener);
        Conn* l = table_.get(c->listener);
        if (l->at_cap) {
          l->at_cap = false;
          mark_dirty(c->listener, l);
        }
      }
      if (admission->limits_peers()) admission->forget_peer(id.slot);
    }
  }
  poller_->remove(c->fd);
  close_socket(c->fd);
  table_.release(id, reported);
  // A descriptor is free again: listeners that ran out may accept now.
  if (!backed_off_.empty()) end_backoffs();
}

void Loop::close_all() {
  for (uint32_t slot = 0; slot < table_.capacity(); slot++) {
    Id id;
    if (!table_.live_at(slot, &id)) continue;
    Conn* c = table_.get(id);
    c->visible = false;
    forget(id, c);
  }
  dirty_.clear();
  to_serve_.clear();
  backed_off_.clear();
}

// ---- listeners and connections ---------------------------------------------

int64_t Loop::listen_tcp(const std::string& host, int port, const ListenOptions& options) {
  int fd = reactor::listen_tcp(host, port, options);
  if (fd < 0) return fd;
  Id id;
  if (!adopt(fd, Kind::kListener, State::kOpen, true, &id)) return -EMFILE;
  admissions_.try_emplace(id.slot);
  return static_cast<int64_t>(id.packed());
}

int64_t Loop::listen_unix(const std::string& path, const ListenOptions& options) {
  int fd = reactor::listen_unix(path, options);
  if (fd < 0) return fd;
  Id id;
  if (!adopt(fd, Kind::kListener, State::kOpen, false, &id)) {
    std::remove(path.c_str());
    return -EMFILE;
  }
  admissions_[id.slot].unix_path = path;
  return static_cast<int64_t>(id.packed());
}

int Loop::configure_listener(uint64_t packed, const AdmissionPolicy& policy,
                             const ConnDefaults& defaults) {
  Admission* admission = admission_of(Id::unpack(packed));
  if (!admission) return -EBADF;
  admission->policy = policy;
  admission->defaults = defaults;
  Id id = Id::unpack(packed);
  Conn* l = table_.get(id);
  l->backlog_cap = policy.wait_in_backlog;
  mark_dirty(id, l);
  return 0;
}

int Loop::listener_counts(uint64_t packed, uint32_t* open, uint32_t* queued) {
  Admission* admission = admission_of(Id::unpack(packed));
  if (!admission) return -EBADF;
  *open = admission->open;
  *queued = admission->queued;
  return 0;
}

// The new socket's place in the backend is claimed before it dials, so one
// select cannot watch never reaches the peer.
int64_t Loop::connect_tcp(const std::string& host, int port) {
  int claimed = -1;
  int fd = reactor::connect_tcp(host, port, [&](int s) { return claim_for(s, &claimed); });
  return adopt_outgoing(fd, claimed, true);
}

int64_t Loop::connect_unix(const std::string& path) {
  int claimed = -1;
  int fd = reactor::connect_unix(path, [&](int s) { return claim_for(s, &claimed); });
  return adopt_outgoing(fd, claimed, false);
}

bool Loop::claim_for(int fd, int* claimed) {
  if (!poller_->claim(fd)) return false;
  *claimed = fd;
  return true;
}

int64_t Loop::adopt_outgoing(int fd, int claimed, bool tcp) {
  if (fd < 0) {
    if (claimed >= 0) poller_->remove(claimed);  // the connect failed after its claim
    return fd;
  }
  Id id;
  Conn* c = adopt(fd, Kind::kStream, State::kConnecting, tcp, &id);
  if (!c) return -EMFILE;
  apply_defaults(c, ConnDefaults{});
  c->visible = true;
  open_++;
  return static_cast<int64_t>(id.packed());
}

Loop::Conn* Loop::adopt_foreign(int fd, Kind kind, bool require_tcp, Id* id, int* error) {
  if (fd < 0) {
    *error = -EBADF;
    return nullptr;
  }
  // Two entries for one fd would close it under each other. A scan: adopting
  // is rare.
  for (uint32_t slot = 0; slot < table_.capacity(); slot++) {
    Id live;
    if (table_.live_at(slot, &live) && table_.get(live)->fd == fd) {
      *error = -EEXIST;
      return nullptr;
    }
  }
  bool tcp = false;
  *error = prepare_adopted(fd, kind == Kind::kListener, require_tcp, &tcp);
  if (*error < 0) return nullptr;
  Conn* c = adopt(fd, kind, State::kOpen, tcp, id, false);
  if (!c) *error = -EMFILE;
  return c;
}

int64_t Loop::adopt_listener(int fd, bool require_tcp) {
  Id id;
  int error = 0;
  if (!adopt_foreign(fd, Kind::kListener, require_tcp, &id, &error)) return error;
  admissions_.try_emplace(id.slot);  // no unix_path: the path is not ours to remove
  return static_cast<int64_t>(id.packed());
}

int64_t Loop::adopt_connection(int fd) {
  Id id;
  int error = 0;
  Conn* c = adopt_foreign(fd, Kind::kStream, false, &id, &error);
  if (!c) return error;
  apply_defaults(c, ConnDefaults{});
  c->reading = true;
  c->visible = true;
  open_++;
  start_idle_clock(id, c);
  return static_cast<int64_t>(id.packed());
}

int64_t Loop::write(uint64_t packed, const iovec* chunks, int count) {
  Id id;
  Conn* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  if (c->state == State::kClosing || c->state == State::kLingering || c->end_requested ||
      c->close_requested) {
    return -EPIPE;
  }
  size_t total = total_length(chunks, count);
  if (c->error || total == 0) return static_cast<int64_t>(c->queue.size());
  if (c->idle_resets_on_write) c->last_active = start_ms();
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
  if (c->queue.size() + (total - sent) > c->max_write) {
    // A reader this slow would make memory grow without bound.
    set_reset_on_close(c->fd);
    forget(id, c);
    return -ENOBUFS;
  }
  c->queue.append(chunks, count, sent);
  if (c->queue.size() >= c->high_water) c->drain_wanted = true;
  mark_dirty(id, c);
  return static_cast<int64_t>(c->queue.size());
}

int Loop::end(uint64_t packed) {
  Id id;
  Conn* c = find_stream(packed, &id);
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

int Loop::close(uint64_t packed) {
  Id id;
  Conn* c = find(packed, &id);
  if (!c || (c->kind == Kind::kStream && !c->visible)) return -EBADF;
  if (c->kind == Kind::kListener) {
    // Nobody will serve the parked connections now.
    Admission* admission = admission_of(id);
    if (admission) {
      while (!admission->parked.empty()) {
        Id parked = admission->parked.front();
        admission->parked.pop_front();
        Conn* p = table_.get(parked);
        if (p && p->state == State::kParked) reject(parked, p, admission->policy);
      }
    }
    forget(id, c);
    return 1;
  }
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

int Loop::abort(uint64_t packed) {
  Id id;
  Conn* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  set_reset_on_close(c->fd);
  forget(id, c);
  return 1;
}

int Loop::set_reading(uint64_t packed, bool reading) {
  Id id;
  Conn* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  c->paused = !reading;
  if (reading) c->hup_seen = false;
  if (reading && holds(id, *c)) to_unhold_.push_back(id);
  mark_dirty(id, c);
  if (!reading && c->registered != kUnregistered && (c->registered & kReceive)) {
    // A multishot receive takes bytes from the socket until it is cancelled:
    // at once, not before the next wait, so the kernel pushes back as it
    // does with readiness. What it took meanwhile is held for resume.
    uint32_t want = desired_interest(*c);
    if (want != kDetached && poller_->modify(c->fd, id.packed(), want) == 0) {
      c->registered = static_cast<uint8_t>(want);
    }
  }
  return 0;
}

int Loop::set_idle_timeout(uint64_t packed, uint32_t ms, bool resets_on_write, uint32_t grace_ms) {
  Id id;
  Conn* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  c->idle_ms = ms;
  c->idle_resets_on_write = resets_on_write;
  if (grace_ms != kKeep) c->grace_ms = grace_ms;
  if (c->state == State::kOpen || c->state == State::kClosing) start_idle_clock(id, c);
  return 0;
}

int Loop::set_idle_notify(uint64_t packed, bool notify) {
  Id id;
  Conn* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  c->idle_notify = notify;
  return 0;
}

int Loop::set_write_limits(uint64_t packed, uint32_t high, uint32_t low, uint32_t max) {
  Id id;
  Conn* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  c->high_water = high;
  c->low_water = low;
  c->max_write = max;
  if (c->queue.size() >= high) c->drain_wanted = true;
  return 0;
}

int Loop::set_no_delay(uint64_t packed, bool enable) {
  Id id;
  Conn* c = find_stream(packed, &id);
  if (!c) return -EBADF;
  return c->tcp ? reactor::set_no_delay(c->fd, enable) : 0;
}

int Loop::set_keep_alive(uint64_t packed, bool enable, int idle_seconds, int interval_seconds,
                         int count) {
  Id id;
  Conn* c = find_stream(packed, &id);
  if (!c) return -EBADF;
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
  Conn* c = find_stream(packed, &id);
  return c ? static_cast<int64_t>(c->queue.size()) : -EBADF;
}

// ---- timers ---------------------------------------------------------------

int64_t Loop::timer_start(uint64_t delay_ms) {
  Id id;
  if (!timers_.start(deadline_after(delay_ms), &id)) return -ENOMEM;
  return static_cast<int64_t>(id.packed());
}

bool Loop::timer_cancel(uint64_t id) { return timers_.cancel(Id::unpack(id)); }

bool Loop::timer_reset(uint64_t id, uint64_t delay_ms) {
  return timers_.reset(Id::unpack(id), deadline_after(delay_ms));
}

void Loop::run_timers() {
  stats_.loop_iterations++;
  uint64_t now = now_ms();
  Id id;
  while (timers_.pop_expired(now, &id)) emit(kTimer, id);
  while (deadlines_.next_deadline() <= now) {
    uint32_t slot = deadlines_.next_slot();
    if (!table_.live_at(slot, &id)) {
      deadlines_.clear(slot);
      continue;
    }
    on_deadline(id, table_.get(id), now);
  }
  deliver();
  settle();
  apply_interest();
  poller_->commit();
}

// ---- the wake-up ----------------------------------------------------------

int Loop::poll() {
  stats_.loop_iterations++;
  apply_interest();
  int n = poller_->wait(events_.data(), limits_.events_per_wake, 0);
  for (int i = 0; i < n; i++) on_event(events_[i]);
  deliver();
  settle();
  apply_interest();
  poller_->commit();
  return n;
}

void Loop::prepare_wait() {
  settle();
  apply_interest();
  poller_->commit();
}

// Serves parked connections whose listener has room again. Only called where
// records may be emitted: not while JavaScript walks a batch.
void Loop::settle() {
  if (!to_unhold_.empty()) {
    // Once: what its deliveries resume (or a slab it could not get) waits
    // for the next settle.
    serve_held();
    deliver();
  }
  while (!to_serve_.empty()) {
    serve_waiting();
    deliver();
  }
}

void Loop::on_event(const PollEvent& event) {
  if (event.completion != kNoCompletion) {
    on_completion(event);
    return;
  }
  Id id = Id::unpack(event.token);
  // Readiness beside a receive (io_uring's poll for writing, which reports
  // the reset too) after bytes received in this batch: the bytes go first,
  // as before a completion's end, or a failed flush would release the
  // connection under its own dataReceived.
  if (data_in_batch(id)) deliver();
  Conn* c = table_.get(id);
  if (!c) return;  // closed earlier in this batch
  if (c->kind == Kind::kListener) {
    on_listener_ready(id);
  } else if (c->state == State::kConnecting) {
    on_connect_ready(id, c);
  } else if (c->state == State::kParked) {
    on_parked_event(id, c, event);
  } else {
    on_stream_ready(id, c, event);
  }
}

// ---- admission --------------------------------------------------------------

void Loop::on_listener_ready(Id listener) {
  for (int i = 0; i < limits_.accepts_per_wake; i++) {
    // Each emit may run JavaScript, which may close the listener.
    Conn* l = table_.get(listener);
    Admission* admission = admission_of(listener);
    if (!l || !admission || l->backoff) return;
    if (admission->holds_back()) {
      l->at_cap = true;  // until one of its connections closes
      mark_dirty(listener, l);
      return;
    }
    int fd = accept_connection(l->fd);
    if (fd < 0) {
      if (fd == -EINTR || fd == -ECONNABORTED) continue;
      if (fd == -EMFILE || fd == -ENFILE) start_backoff(listener, l);
      return;  // EAGAIN, or an error the next wake-up will meet again
    }
    take_accepted(listener, l->tcp, admission, fd);
  }
}

// A socket a listener accepted (by accept(), or by io_uring's multishot accept).
void Loop::take_accepted(Id listener, bool tcp, Admission* admission, int fd) {
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

void Loop::admit(Id listener, Admission* admission, int fd) {
  Conn* l = table_.get(listener);
  Id id;
  Conn* c = adopt(fd, Kind::kStream, State::kOpen, l->tcp, &id);
  if (!c) return;
  apply_defaults(c, admission->defaults);
  c->listener = listener;
  c->reading = false;
  if (admission->limits_peers()) {
    PeerKey key;
    if (peer_ip(fd, key.bytes) == 0) {
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

void Loop::serve(Id id, Conn* c, Id listener, Admission* admission) {
  c->state = State::kOpen;
  c->reading = true;
  c->visible = true;
  c->hup_seen = false;
  open_++;
  admission->open++;
  start_idle_clock(id, c);
  mark_dirty(id, c);
  emit(kAccepted, id, static_cast<int32_t>(listener.slot), static_cast<int32_t>(listener.gen));
}

void Loop::park(Id id, Conn* c, Admission* admission) {
  c->state = State::kParked;
  admission->queued++;
  queued_++;
  admission->parked.push_back(id);
  if (admission->policy.queue_timeout_ms > 0) {
    deadlines_.set(id.slot, deadline_after(admission->policy.queue_timeout_ms));
  }
  mark_dirty(id, c);
}

// Takes a parked connection out of its listener's counts; its entry in the
// FIFO is skipped when it reaches the front.
void Loop::leave_queue(Id id, Conn* c) {
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
      Conn* p = table_.get(parked);
      if (p && p->state == State::kParked && parked.slot != id.slot) live.push_back(parked);
    }
    admission->parked.swap(live);
  }
}

// A rejected connection is told with a reset, or with the canned bytes and a
// graceful close. Lingering until the peer closes keeps its unread request
// from turning our close into a reset that would destroy the reply.
void Loop::reject(Id id, Conn* c, const AdmissionPolicy& policy) {
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
void Loop::refuse_unwatchable(int fd, const AdmissionPolicy& policy) {
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

void Loop::serve_waiting() {
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
      Conn* c = table_.get(id);
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
void Loop::on_parked_event(Id id, Conn* c, const PollEvent& event) {
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

void Loop::start_backoff(Id listener, Conn* l) {
  stats_.emfile++;
  l->backoff = true;
  mark_dirty(listener, l);
  if (std::find(backed_off_.begin(), backed_off_.end(), listener) == backed_off_.end()) {
    backed_off_.push_back(listener);
  }
  deadlines_.set(listener.slot, deadline_after(backoff_ms_));
  backoff_ms_ = std::min(backoff_ms_ * 2, limits_.backoff_max_ms);
}

void Loop::end_backoffs() {
  std::vector<Id> listeners;
  listeners.swap(backed_off_);
  for (Id listener : listeners) {
    Conn* l = table_.get(listener);
    if (!l || !l->backoff) continue;
    l->backoff = false;
    deadlines_.clear(listener.slot);
    mark_dirty(listener, l);
  }
}

// ---- deadlines --------------------------------------------------------------

void Loop::start_idle_clock(Id id, Conn* c) {
  if (c->idle_ms == 0) {
    deadlines_.clear(id.slot);
    return;
  }
  c->last_active = start_ms();
  deadlines_.set(id.slot, c->last_active + c->idle_ms);
}

// Every handler either clears the slot's deadline or moves it later.
void Loop::on_deadline(Id id, Conn* c, uint64_t now) {
  if (c->kind == Kind::kListener) {
    // The accept backoff is over.
    deadlines_.clear(id.slot);
    c->backoff = false;
    mark_dirty(id, c);
    return;
  }
  switch (c->state) {
    case State::kParked:
      stats_.queue_timeouts++;
      if (Admission* admission = admission_of(c->listener)) {
        reject(id, c, admission->policy);
      } else {
        reject(id, c, AdmissionPolicy{});
      }
      return;
    case State::kLingering:
      // The peer did not close in time.
      set_reset_on_close(c->fd);
      release(id, c, 0, c->reaped ? kReasonGraceExpired : kReasonNone);
      return;
    case State::kConnecting:
      deadlines_.clear(id.slot);
      return;
    case State::kOpen:
    case State::kClosing:
      break;
  }
  if (c->idle_ms == 0) {
    deadlines_.clear(id.slot);
    return;
  }
  uint64_t due = c->last_active + c->idle_ms;
  if (due > now) {
    deadlines_.set(id.slot, due);  // active since it was scheduled
    return;
  }
  stats_.idle_timeouts++;
  if (c->idle_notify && c->state == State::kOpen) {
    // The protocol decides; unless it acts, the connection gets another period.
    c->last_active = now;
    deadlines_.set(id.slot, now + c->idle_ms);
    emit(kIdle, id);
    return;
  }
  reap(id, c);
}

void Loop::reap(Id id, Conn* c) {
  stats_.reaped++;
  c->reaped = true;
  if (c->state == State::kClosing) {
    // Its peer stopped reading what we still had to send.
    set_reset_on_close(c->fd);
    release(id, c, 0);
    return;
  }
  linger(id, c, c->grace_ms);
}

void Loop::linger(Id id, Conn* c, uint32_t ms) {
  c->state = State::kLingering;
  c->paused = false;
  c->hup_seen = false;
  c->reading = !c->peer_ended;
  c->end_requested = true;
  c->drain_wanted = false;
  if (holds(id, *c)) to_unhold_.push_back(id);  // an end may wait there
  if (c->queue.empty() && !c->write_shut) {
    shutdown_write(c->fd);
    c->write_shut = true;
  }
  mark_dirty(id, c);
  if (c->peer_ended && c->write_shut) {
    release(id, c, 0);
    return;
  }
  deadlines_.set(id.slot, deadline_after(ms));
}

// ---- connections ------------------------------------------------------------

void Loop::on_connect_ready(Id id, Conn* c) {
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

void Loop::on_stream_ready(Id id, Conn* c, const PollEvent& event) {
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

bool Loop::read_once(Id id, Conn* c) {
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
    if (c->idle_ms) c->last_active = start_ms();
    emit(kData, id, static_cast<int32_t>(slab_used_), static_cast<int32_t>(n));
    slab_used_ += static_cast<size_t>(n);
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

bool Loop::flush(Id id, Conn* c) {
  iovec chunk{const_cast<uint8_t*>(c->queue.data()), c->queue.size()};
  ssize_t n = socket_send(c->fd, &chunk, 1);
  if (n < 0) {
    if (would_block(static_cast<int>(-n))) return true;
    release(id, c, static_cast<int>(-n));
    return false;
  }
  stats_.bytes_out += static_cast<uint64_t>(n);
  if (n > 0 && c->idle_resets_on_write) c->last_active = start_ms();
  c->queue.consume(static_cast<size_t>(n));
  if (c->drain_wanted && c->queue.size() <= c->low_water) {
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
bool Loop::after_drain(Id id, Conn* c) {
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

// ---- completions ------------------------------------------------------------
//
// The same paths as the readiness ones (on_listener_ready, read_once), for
// what the backend already did: an accept, a receive.

void Loop::on_completion(const PollEvent& event) {
  Id id = Id::unpack(event.token);
  if (event.completion == kAcceptedFd) {
    on_accepted(id, event.result);
  } else if (event.result > 0) {
    on_received(id, event.data, static_cast<size_t>(event.result));
  } else {
    on_received_end(id, event.result);
  }
}

void Loop::on_accepted(Id listener, int result) {
  Conn* l = table_.get(listener);
  Admission* admission = admission_of(listener);
  if (result < 0) {
    // The multishot accept ended; it is armed again when the interest says
    // so: after the backoff for EMFILE/ENFILE, at once for the rest.
    if ((result == -EMFILE || result == -ENFILE) && l && admission && !l->backoff) {
      start_backoff(listener, l);
    }
    return;
  }
  if (!admission) {
    // The listener closed while the accept was in flight: reset, as the
    // kernel resets the connections left in a closed listener's backlog.
    set_reset_on_close(result);
    close_socket(result);
    return;
  }
  take_accepted(listener, l->tcp, admission, result);
}

// Delivers what points into the current slab (JavaScript may run), then reads
// go to a fresh one.
void Loop::start_new_slab() {
  deliver();
  slab_ = sink_->fresh_slab();
  slab_used_ = 0;
  undelivered_from_ = 0;
}

// Whether the undelivered batch has a kData record of this connection
// (emitted by take(); the batch it goes out with is stats_.batches + 1).
bool Loop::data_in_batch(Id id) const {
  return record_count_ > 0 && id.slot < data_batch_.size() &&
         data_batch_[id.slot] == stats_.batches + 1;
}

bool Loop::holds(Id id, const Conn& c) const {
  return c.paused || (!held_.empty() && held_.count(id.slot) != 0);
}

void Loop::on_received(Id id, const uint8_t* data, size_t length) {
  Conn* c = table_.get(id);
  if (!c || c->kind != Kind::kStream) return;
  if (c->state == State::kLingering || !c->reading) return;  // nobody wants them
  if (holds(id, *c)) {
    held_[id.slot].bytes.append(reinterpret_cast<const char*>(data), length);
    return;
  }
  if (c->error) {
    if (data_in_batch(id)) {
      // A write failed while take() delivered part of the batch; the bytes
      // after it still go out on a live connection.
      deliver();
      on_received(id, data, length);
      return;
    }
    release(id, c, c->error);
    return;
  }
  take(id, data, length);
}

void Loop::on_received_end(Id id, int result) {
  Conn* c = table_.get(id);
  if (!c || c->kind != Kind::kStream) return;
  if (data_in_batch(id)) {
    // Its bytes first, then the end or the error: JavaScript may pause it
    // there, and its dataReceived must not meet a released connection (a
    // client's bytes and its reset often share a batch).
    deliver();
    on_received_end(id, result);
    return;
  }
  int error = result < 0 ? -result : 0;
  if (c->state == State::kLingering) {
    if (error) {
      release(id, c, error);
      return;
    }
    c->peer_ended = true;
    c->reading = false;
    mark_dirty(id, c);
    if (c->write_shut) release(id, c, 0);  // else after_drain closes it once flushed
    return;
  }
  if (!c->reading) {
    // Closing (or ended): an error still ends it, as a hang-up would.
    if (error) release(id, c, error);
    return;
  }
  if (holds(id, *c)) {
    Held& held = held_[id.slot];
    if (error) {
      if (!held.error) held.error = error;
    } else {
      held.ended = true;
    }
    return;
  }
  if (error) {
    release(id, c, error);
    return;
  }
  // As read() == 0.
  c->peer_ended = true;
  c->reading = false;
  if (c->write_shut) {
    release(id, c, 0);
    return;
  }
  mark_dirty(id, c);
  emit(kEof, id);
}

bool Loop::take(Id id, const uint8_t* data, size_t length) {
  Conn* c = table_.get(id);
  while (length > 0) {
    if (!c) return false;
    if (holds(id, *c)) {  // paused by JavaScript during a delivery
      held_[id.slot].bytes.append(reinterpret_cast<const char*>(data), length);
      return true;
    }
    if (!c->reading || c->state == State::kLingering) return true;
    size_t n = std::min(length, limits_.max_read);
    if (slab_.size - slab_used_ < limits_.max_read) {
      start_new_slab();
      c = table_.get(id);
      if (!c) return false;
      if (slab_.size < n) {
        // No memory now: keep the bytes and try again at the next settle.
        held_[id.slot].bytes.append(reinterpret_cast<const char*>(data), length);
        to_unhold_.push_back(id);
        return true;
      }
      continue;  // the delivery may have paused or closed it
    }
    // Bytes of one receive split over buffers, or of several receives in
    // one wake-up, arrive back to back: one record for them.
    Record* last = record_count_ > 0 ? &records_[record_count_ - 1] : nullptr;
    bool joined = last && last->kind == kData && last->slot == static_cast<int32_t>(id.slot) &&
                  last->gen == static_cast<int32_t>(id.gen) &&
                  static_cast<size_t>(last->a) + static_cast<size_t>(last->b) == slab_used_ &&
                  static_cast<size_t>(last->b) + n <= limits_.max_read;
    if (!joined && (record_count_ == record_capacity_ || data_in_batch(id))) {
      // Delivered first: JavaScript may pause the connection there, and no
      // record of it may follow a pause in the same batch.
      deliver();
      c = table_.get(id);
      continue;
    }
    std::memcpy(slab_.data + slab_used_, data, n);
    stats_.bytes_in += n;
    if (c->idle_ms) c->last_active = start_ms();
    if (joined) {
      last->b += static_cast<int32_t>(n);
    } else {
      emit(kData, id, static_cast<int32_t>(slab_used_), static_cast<int32_t>(n));
      if (data_batch_.size() <= id.slot) data_batch_.resize(id.slot + 1, 0);
      data_batch_[id.slot] = stats_.batches + 1;
    }
    slab_used_ += n;
    data += n;
    length -= n;
    c = table_.get(id);
  }
  return true;
}

// Resumed connections get their held input first, then what follows.
void Loop::serve_held() {
  std::vector<Id> ids;
  ids.swap(to_unhold_);
  for (Id id : ids) {
    Conn* c = table_.get(id);
    if (!c || c->paused) continue;  // resume() queues it again
    auto it = held_.find(id.slot);
    if (it == held_.end()) continue;
    Held held = std::move(it->second);
    held_.erase(it);
    if (!held.bytes.empty()) {
      if (c->state == State::kLingering || !c->reading) {
        // Nobody wants them any more.
      } else if (!take(id, reinterpret_cast<const uint8_t*>(held.bytes.data()),
                       held.bytes.size())) {
        continue;
      }
    }
    if (!held.error && !held.ended) continue;
    c = table_.get(id);
    if (!c) continue;
    if (holds(id, *c)) {  // paused again while its bytes were delivered
      Held& rest = held_[id.slot];
      rest.ended = rest.ended || held.ended;
      if (!rest.error) rest.error = held.error;
      continue;
    }
    on_received_end(id, held.error ? -held.error : 0);
  }
}

// ---- records ----------------------------------------------------------------

void Loop::emit(RecordKind kind, Id id, int32_t a, int32_t b) {
  if (record_count_ == record_capacity_) {
    deliver();
    // JavaScript may have closed the connection this record is about.
    if (kind != kClosed && kind != kTimer && !table_.get(id)) return;
  }
  records_[record_count_++] = {kind, static_cast<int32_t>(id.slot), static_cast<int32_t>(id.gen), a,
                               b};
}

void Loop::deliver() {
  if (record_count_ == 0) return;
  size_t count = record_count_;
  record_count_ = 0;
  stats_.batches++;
  stats_.records += count;
  stats_.max_batch = std::max<uint64_t>(stats_.max_batch, count);
  uint8_t* slab = slab_.data;
  size_t from = undelivered_from_;
  size_t closed_slots = table_.deferred();  // their kClosed records go out now
  bool released = sink_->deliver(records_, count);
  table_.reuse_deferred(closed_slots);
  if (released && slab == slab_.data) slab_used_ = from;  // nobody kept those bytes
  undelivered_from_ = slab_used_;
}

}  // namespace reactor
