// The table, interest, the wake-up and the records (see loop_core.h for the
// other parts), and Loop, the public face, which forwards to the core.
#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "loop_core.h"
#include "platform.h"

namespace reactor {

LoopCore::LoopCore(std::unique_ptr<Poller> poller, Sink* sink, Record* records,
                   size_t record_capacity, LoopLimits limits)
    : poller_(std::move(poller)),
      sink_(sink),
      records_(records),
      record_capacity_(record_capacity),
      limits_(limits),
      fd_table_(poller_->pollable_fd()),
      events_(static_cast<size_t>(limits.events_per_wake)),
      backoff_ms_(limits.backoff_first_ms) {}

LoopCore::~LoopCore() { close_all(); }

// ---- the table ------------------------------------------------------------

LoopCore::Handle* LoopCore::adopt(int fd, Kind kind, State state, bool tcp, Id* id,
                                  bool close_on_failure) {
  if (!watchers_by_fd_.empty()) evict_watcher(fd);
  if (!poller_->claim(fd)) {
    if (close_on_failure) close_socket(fd);
    return nullptr;
  }
  if (!table_.allocate(id)) {
    poller_->remove(fd);  // gives its claim back
    if (close_on_failure) close_socket(fd);
    return nullptr;
  }
  fd_table_.note(fd);
  Handle* c = table_.get(*id);
  c->fd = fd;
  c->kind = kind;
  c->state = state;
  c->tcp = tcp;
  mark_dirty(*id, c);
  return c;
}

void LoopCore::apply_defaults(Handle* c, const ConnDefaults& defaults, const SharedLimits& limits) {
  c->idle_ms = defaults.idle_ms;
  c->idle_resets_on_write = defaults.idle_resets_on_write;
  c->limits = limits;
}

LoopCore::Handle* LoopCore::find(uint64_t packed, Id* out) {
  *out = Id::unpack(packed);
  return table_.get(*out);
}

// A connection JavaScript may act on (not a listener, parked or unknown one).
LoopCore::Handle* LoopCore::find_stream(uint64_t packed, Id* out) {
  Handle* c = find(packed, out);
  return c && c->kind == Kind::kStream && c->visible ? c : nullptr;
}

Listener* LoopCore::listener_at(Id id) {
  Handle* l = table_.get(id);
  return l && l->kind == Kind::kListener ? l->listening() : nullptr;
}

size_t LoopCore::connections_of(Id listener) const {
  // A listener's record counts only while it is open, and a draining server
  // is asked seldom (once per batch while it drains), so no list is kept.
  size_t count = 0;
  for (uint32_t slot = 0; slot < table_.capacity(); slot++) {
    Id id;
    if (!table_.live_at(slot, &id)) continue;
    const Handle& c = table_.at(slot);
    if (c.kind == Kind::kStream && c.listener == listener) count++;
  }
  return count;
}

int LoopCore::stop_accepting(uint64_t packed) {
  Id id = Id::unpack(packed);
  Listener* listener = listener_at(id);
  if (!listener) return -EBADF;
  listener->stopped = true;
  mark_dirty(id, table_.get(id));
  if (listener->http) {
    listener->http->draining = true;
    http_drain(id);
  }
  return 0;
}

Admission* LoopCore::admission_of(Id id) {
  Listener* listener = listener_at(id);
  return listener ? &listener->admission : nullptr;
}

void LoopCore::mark_dirty(Id id, Handle* c) {
  if (c->dirty) return;
  c->dirty = true;
  dirty_.push_back(id);
}

uint32_t LoopCore::desired_interest(const Handle& c) const {
  if (c.kind == Kind::kDatagram) return datagram_interest(c);
  if (c.kind == Kind::kWatcher) {
    // Stopped (nothing asked for, a hang-up or error reported, the fd lost):
    // not watched at all, since epoll reports hang-ups and errors whatever
    // the interest and would report them at every wait.
    if (c.fd < 0 || c.hup_seen || c.wanted == kNone) return kDetached;
    // A reader hears of its peer's shutdown as a hang-up (EPOLLRDHUP).
    return c.wanted & kReadable ? c.wanted | kPeerClosed : c.wanted;
  }
  if (c.kind == Kind::kListener) {
    const Listener& listener = *c.listening();
    if (listener.backoff || listener.at_cap || listener.stopped) return kNone;
    // A cap that leaves clients in the backlog accepts on readiness: a
    // multishot accept would take them all.
    bool in_backlog = listener.admission.policy.wait_in_backlog;
    return poller_->receives() && !in_backlog ? kAccept : kReadable;
  }
  if (c.state == State::kConnecting) return kWritable;
  // Read on readiness, even where the backend receives: the header is
  // peeked at, so that not a byte after it leaves the kernel.
  if (c.state == State::kAwaitingHeader) return kReadable;
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

void LoopCore::apply_interest() {
  // Entries may be appended while we walk (a failure releases nothing here).
  for (size_t i = 0; i < dirty_.size(); i++) {
    Id id = dirty_[i];
    Handle* c = table_.get(id);
    if (!c) continue;
    // Datagrams sent during the batch go out together now, before the wait.
    if (c->kind == Kind::kDatagram && !c->udp()->blocked) flush_datagrams(id, c);
    c->dirty = false;
    register_interest(id, c);
  }
  dirty_.clear();
}

int LoopCore::register_interest(Id id, Handle* c) {
  uint32_t want = desired_interest(*c);
  if (c->registered == want) return 0;
  if (want == kDetached) {
    if (c->registered == kUnregistered) return 0;  // never registered: nothing to detach
    int rc = poller_->detach(c->fd);
    if (rc == 0) c->registered = kUnregistered;
    return rc;
  }
  int rc = c->registered == kUnregistered ? poller_->add(c->fd, id.packed(), want)
                                          : poller_->modify(c->fd, id.packed(), want);
  if (rc == 0) c->registered = static_cast<uint8_t>(want);
  return rc;
}

void LoopCore::release(Id id, Handle* c, int error, CloseReason why) {
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

void LoopCore::forget(Id id, Handle* c, bool reported) {
  idle_.remove(id.slot);
  deadlines_.clear(id.slot);
  if (c->kind == Kind::kWatcher) {
    unwatch(c);  // its fd is the caller's: never closed here
    if (c->unref) unref_watchers_--;
    table_.release(id, reported);
    return;
  }
  if (c->kind == Kind::kListener) {
    const std::string& path = c->listening()->unix_path;
    if (!path.empty()) std::remove(path.c_str());
  } else {
    if (c->visible) open_--;
    if (c->state == State::kParked) leave_queue(id, c);
    if (c->state == State::kAwaitingHeader || !proxied_.empty()) forget_proxy(id, c);
    held_.forget(id.slot);
    if (c->http) http_.finish(id.slot);
    if (c->listener.slot != kMaxSlots) leave_listener(id, c);
  }
  poller_->remove(c->fd);
  close_socket(c->fd);
  table_.release(id, reported);
  // A descriptor is free again: listeners that ran out may accept now.
  if (!backed_off_.empty()) end_backoffs();
}

void LoopCore::close_all() {
  for (uint32_t slot = 0; slot < table_.capacity(); slot++) {
    Id id;
    if (!table_.live_at(slot, &id)) continue;
    Handle* c = table_.get(id);
    c->visible = false;
    forget(id, c);
  }
  dirty_.clear();
  to_serve_.clear();
  backed_off_.clear();
  gone_.clear();
}

LoopCore::Handle* LoopCore::adopt_foreign(int fd, Kind kind, bool require_tcp, Id* id, int* error) {
  if (fd < 0) {
    *error = -EBADF;
    return nullptr;
  }
  // Two entries for one fd would close it under each other.
  if (holds_fd(fd)) {
    *error = -EEXIST;
    return nullptr;
  }
  bool tcp = false;
  *error = prepare_adopted(fd, kind == Kind::kListener, require_tcp, &tcp);
  if (*error < 0) return nullptr;
  Handle* c = adopt(fd, kind, State::kOpen, tcp, id, false);
  if (!c) *error = -EMFILE;
  return c;
}

// A scan: adopting and watching are rare.
bool LoopCore::holds_fd(int fd) {
  for (uint32_t slot = 0; slot < table_.capacity(); slot++) {
    Id live;
    if (table_.live_at(slot, &live) && table_.get(live)->fd == fd) return true;
  }
  return false;
}

// ---- the wake-up ----------------------------------------------------------

int LoopCore::poll() {
  stats_.loop_iterations++;
  apply_interest();
  int n = poller_->wait(events_.data(), limits_.events_per_wake, 0);
  wake_ms_ = start_ms();
  clock_fresh_ = true;
  for (int i = 0; i < n; i++) on_event(events_[i]);
  clock_fresh_ = false;
  deliver();
  settle();
  apply_interest();
  poller_->commit();
  return n;
}

void LoopCore::prepare_wait() {
  settle();
  apply_interest();
  poller_->commit();
}

// Serves parked connections whose listener has room again and reports
// watchers that lost their fd. Only called where records may be emitted: not
// while JavaScript walks a batch.
void LoopCore::settle() {
  if (held_.resumed()) {
    // Once: what its deliveries resume (or a slab it could not get) waits
    // for the next settle.
    serve_held();
    deliver();
  }
  while (!to_serve_.empty()) {
    serve_waiting();
    deliver();
  }
  if (!gone_.empty()) {
    report_gone();
    deliver();
  }
  if (!http_.to_resume.empty()) {
    http_resume_pending();
    deliver();
  }
}

void LoopCore::on_event(const PollEvent& event) {
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
  Handle* c = table_.get(id);
  if (!c) return;  // closed earlier in this batch
  if (c->kind == Kind::kWatcher) {
    on_watcher_event(id, c, event);
  } else if (c->kind == Kind::kListener) {
    on_listener_ready(id);
  } else if (c->kind == Kind::kDatagram) {
    on_datagram_ready(id, c, event);
  } else if (c->state == State::kConnecting) {
    on_connect_ready(id, c);
  } else if (c->state == State::kParked) {
    on_parked_event(id, c, event);
  } else if (c->state == State::kAwaitingHeader) {
    on_proxy_header_ready(id, c);
  } else {
    on_stream_ready(id, c, event);
  }
}

// ---- records ----------------------------------------------------------------

void LoopCore::emit(RecordKind kind, Id id, int32_t a, int32_t b) {
  if (record_count_ == record_capacity_) {
    deliver();
    // JavaScript may have closed the connection this record is about.
    if (kind != kClosed && kind != kTimer && !table_.get(id)) return;
  }
  records_[record_count_++] = {kind, static_cast<int32_t>(id.slot), static_cast<int32_t>(id.gen), a,
                               b};
}

void LoopCore::deliver() {
  if (record_count_ == 0) return;
  size_t count = record_count_;
  record_count_ = 0;
  stats_.batches++;
  stats_.records += count;
  stats_.max_batch = std::max<uint64_t>(stats_.max_batch, count);
  uint8_t* slab = slab_.data;
  size_t from = undelivered_from_;
  size_t closed_slots = table_.deferred();  // their kClosed records go out now
  // JavaScript takes its time: the activity it causes, and what the wake-up
  // reads after it, is timed by the clock again.
  bool fresh = clock_fresh_;
  clock_fresh_ = false;
  bool released = sink_->deliver(records_, count);
  if (fresh) {
    wake_ms_ = start_ms();
    clock_fresh_ = true;
  }
  table_.reuse_deferred(closed_slots);
  if (released && slab == slab_.data) slab_used_ = from;  // nobody kept those bytes
  undelivered_from_ = slab_used_;
}

// ---- Loop: the public face ---------------------------------------------------

Loop::Loop(std::unique_ptr<Poller> poller, Sink* sink, Record* records, size_t record_capacity,
           LoopLimits limits)
    : core_(std::make_unique<LoopCore>(std::move(poller), sink, records, record_capacity, limits)) {
}
Loop::~Loop() = default;

const char* Loop::backend() const { return core_->poller_->name(); }
int Loop::configure_http(uint64_t listener, const http::ServerConfig& config) {
  return core_->configure_http(listener, config);
}
int64_t Loop::http_respond(uint64_t id, const http::ResponseHead* head, const iovec* body,
                           int count, bool end) {
  return core_->http_respond(id, head, body, count, end);
}
int Loop::http_set_body_reading(uint64_t id, bool reading) {
  return core_->http_set_body_reading(id, reading);
}
int Loop::pollable_fd() const { return core_->poller_->pollable_fd(); }
int64_t Loop::listen_tcp(const std::string& host, int port, const ListenOptions& options) {
  return core_->listen_tcp(host, port, options);
}
int64_t Loop::listen_unix(const std::string& path, const ListenOptions& options) {
  return core_->listen_unix(path, options);
}
int Loop::configure_listener(uint64_t id, const AdmissionPolicy& policy,
                             const ConnDefaults& defaults) {
  return core_->configure_listener(id, policy, defaults);
}
int Loop::listener_counts(uint64_t id, uint32_t* open, uint32_t* queued) {
  return core_->listener_counts(id, open, queued);
}
size_t Loop::connections_of(uint64_t listener) const {
  return core_->connections_of(Id::unpack(listener));
}
int Loop::stop_accepting(uint64_t listener) { return core_->stop_accepting(listener); }
int64_t Loop::connect_tcp(const std::string& host, int port) {
  return core_->connect_tcp(host, port);
}
int64_t Loop::connect_unix(const std::string& path) { return core_->connect_unix(path); }
int64_t Loop::adopt_listener(int fd, bool require_tcp) {
  return core_->adopt_listener(fd, require_tcp);
}
int64_t Loop::adopt_connection(int fd) { return core_->adopt_connection(fd); }
int64_t Loop::watch(int fd, uint32_t interest) { return core_->watch(fd, interest); }
int Loop::watch_update(uint64_t id, uint32_t interest) { return core_->watch_update(id, interest); }
int Loop::watch_keep_alive(uint64_t id, bool keep_alive) {
  return core_->watch_keep_alive(id, keep_alive);
}
int64_t Loop::write(uint64_t id, const iovec* chunks, int count) {
  return core_->write(id, chunks, count);
}
int Loop::set_reading(uint64_t id, bool reading) { return core_->set_reading(id, reading); }
int Loop::set_idle_timeout(uint64_t id, uint32_t ms, bool resets_on_write, uint32_t grace_ms) {
  return core_->set_idle_timeout(id, ms, resets_on_write, grace_ms);
}
int Loop::set_idle_notify(uint64_t id, bool notify) { return core_->set_idle_notify(id, notify); }
int Loop::set_write_limits(uint64_t id, uint32_t high, uint32_t low, uint32_t max) {
  return core_->set_write_limits(id, high, low, max);
}
int Loop::end(uint64_t id) { return core_->end(id); }
int Loop::close(uint64_t id) { return core_->close(id); }
int Loop::abort(uint64_t id) { return core_->abort(id); }
int Loop::set_no_delay(uint64_t id, bool enable) { return core_->set_no_delay(id, enable); }
int Loop::set_keep_alive(uint64_t id, bool enable, int idle_seconds, int interval_seconds,
                         int count) {
  return core_->set_keep_alive(id, enable, idle_seconds, interval_seconds, count);
}
int Loop::address(uint64_t id, bool peer, SocketAddress* out) {
  return core_->address(id, peer, out);
}
int Loop::proxy_address(uint64_t id, SocketAddress* out) { return core_->proxy_address(id, out); }
int64_t Loop::queued_bytes(uint64_t id) { return core_->queued_bytes(id); }
void Loop::close_all() { core_->close_all(); }
const Stats& Loop::stats() const { return core_->stats_; }
size_t Loop::open_connections() const { return core_->open_; }
size_t Loop::queued_connections() const { return core_->queued_; }
int64_t Loop::timer_start(uint64_t delay_ms) { return core_->timer_start(delay_ms); }
bool Loop::timer_cancel(uint64_t id) { return core_->timer_cancel(id); }
bool Loop::timer_reset(uint64_t id, uint64_t delay_ms) { return core_->timer_reset(id, delay_ms); }
bool Loop::timer_keep_alive(uint64_t id, bool keep_alive) {
  return core_->timers_.set_keeps_alive(Id::unpack(id), keep_alive);
}
size_t Loop::timers_keeping_alive() const { return core_->timers_.keeping_alive(); }
uint64_t Loop::next_timer_deadline() const { return core_->next_deadline(); }
size_t Loop::pending_timers() const { return core_->timers_.size(); }
int Loop::poll() { return core_->poll(); }
void Loop::run_timers() { core_->run_timers(); }
void Loop::prepare_wait() { core_->prepare_wait(); }
bool Loop::has_pending_changes() const { return core_->has_pending_changes(); }
size_t Loop::live_handles() const { return core_->live_handles(); }
uint64_t Loop::now_ms() { return LoopCore::now_ms(); }

}  // namespace reactor
