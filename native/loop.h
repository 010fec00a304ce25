// The reactor core: connection table, accept/read/write paths, timers and the
// batch of event records handed to JavaScript. Knows nothing of Node: the
// binding (addon.cc) drives it and supplies a Sink; the native tests drive it
// directly.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "admission.h"
#include "deadline_heap.h"
#include "platform.h"
#include "poller.h"
#include "slot_table.h"
#include "sockets.h"
#include "timer_heap.h"
#include "write_queue.h"

namespace reactor {

// One event for JavaScript, five int32 words in a shared array.
struct Record {
  int32_t kind;
  int32_t slot;
  int32_t gen;
  int32_t a;
  int32_t b;
};

enum RecordKind : int32_t {
  kAccepted = 1,   // a, b: the listener's slot and generation
  kConnected = 2,  // an outgoing connect completed
  kData = 3,       // a: offset in the current slab, b: length
  kEof = 4,        // the peer shut down its write side; reading stopped
  kClosed = 5,     // the loop closed the connection; a: errno or 0, b: a CloseReason
  kTimer = 6,      // slot/gen name a timer
  kDrain = 7,      // queued bytes fell to the low watermark after passing the high one
  kIdle = 8,       // the idle timeout expired on a connection whose protocol decides
};

enum CloseReason : int32_t {
  kReasonNone = 0,
  kReasonIdle = 1,          // reaped after an idle timeout
  kReasonGraceExpired = 2,  // reaped, then aborted: the peer did not close within the grace
};

// Counters for reactor.stats(): kept as the events happen, never by a walk.
struct Stats {
  uint64_t accepted = 0;        // accept() calls that returned a connection
  uint64_t rejected = 0;        // queue overflow, queue timeout, per-peer cap, listener closed
  uint64_t queue_timeouts = 0;  // of the rejected: waited longer than the queue timeout
  uint64_t abandoned = 0;       // parked connections whose client went away
  uint64_t reaped = 0;          // idle connections the loop ended itself
  uint64_t idle_timeouts = 0;   // every idle expiry, including those handed to JavaScript
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t loop_iterations = 0;  // wake-ups: polls and timer runs
  uint64_t batches = 0;          // deliveries to the sink
  uint64_t records = 0;
  uint64_t max_batch = 0;
  uint64_t emfile = 0;  // accept() failed for want of descriptors
};

// Read memory: bytes are read into the current slab at increasing offsets and
// never overwritten, so JavaScript may keep views of them; when a slab runs
// short the loop delivers what it has and asks for a fresh one. A sink that
// knows nobody kept the bytes of a delivery says so, and that part of the
// slab is read into again.
struct Slab {
  uint8_t* data = nullptr;
  size_t size = 0;
};

class Sink {
 public:
  virtual ~Sink() = default;
  // Returns true when no view of the bytes these records name was kept.
  virtual bool deliver(const Record* records, size_t count) = 0;
  virtual Slab fresh_slab() = 0;
};

struct LoopLimits {
  int events_per_wake = 256;
  int accepts_per_wake = 64;
  size_t max_read = 64 * 1024;
  // How long a rejected connection may take to read our reply and close.
  uint32_t linger_ms = 2000;
  // Accept backoff after EMFILE/ENFILE: first wait, doubled up to the last.
  uint32_t backoff_first_ms = 50;
  uint32_t backoff_max_ms = 1000;
};

class Loop {
 public:
  Loop(std::unique_ptr<Poller> poller, Sink* sink, Record* records, size_t record_capacity,
       LoopLimits limits = {});
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  const char* backend() const { return poller_->name(); }
  int pollable_fd() const { return poller_->pollable_fd(); }

  // Listeners and connections. Each returns a packed Id (>= 0) or -errno.
  int64_t listen_tcp(const std::string& host, int port, const ListenOptions& options);
  int64_t listen_unix(const std::string& path, const ListenOptions& options);
  // Caps, queue and connection defaults of a listener (default: none).
  int configure_listener(uint64_t id, const AdmissionPolicy& policy, const ConnDefaults& defaults);
  // Served and parked connections of a listener.
  int listener_counts(uint64_t id, uint32_t* open, uint32_t* queued);
  int64_t connect_tcp(const std::string& host, int port);
  int64_t connect_unix(const std::string& path);
  // Sockets made elsewhere (inherited, passed by a parent, systemd socket
  // activation). adopt_listener takes a listening stream socket (configure it
  // with configure_listener), adopt_connection a connected one, open and read
  // at once like a connection just made. Made non-blocking and close-on-exec;
  // from success on the loop owns fd and closes it (a Unix listener's path is
  // left in place: we did not create it). On failure the caller still owns
  // fd: -EBADF, -ENOTSOCK, -EINVAL (not a stream socket, or listening when a
  // connection was asked for and vice versa), -ENOTCONN, -EAFNOSUPPORT,
  // -EEXIST (the loop already has it), -EMFILE (the table is full or the
  // backend cannot watch it), -ENOTSUP on Windows; -EPROTOTYPE for a Unix
  // listener when require_tcp (a per-peer cap is asked for).
  int64_t adopt_listener(int fd, bool require_tcp = false);
  int64_t adopt_connection(int fd);

  // Sends what the socket takes now and queues the rest. Returns the bytes
  // queued afterwards, or -errno if id is not an open connection. A socket
  // error is reported later as a kClosed record, like every other failure.
  // Queuing beyond the connection's max_write closes it with a reset and
  // returns -ENOBUFS.
  int64_t write(uint64_t id, const iovec* chunks, int count);
  // Pause (false) or resume (true) reading; applied before the next wait.
  int set_reading(uint64_t id, bool reading);
  // 0 disables. The clock restarts now. grace_ms kKeep keeps the current one.
  static constexpr uint32_t kKeep = UINT32_MAX;
  int set_idle_timeout(uint64_t id, uint32_t ms, bool resets_on_write, uint32_t grace_ms);
  // Whether an idle expiry is handed to JavaScript (kIdle) instead of reaped.
  int set_idle_notify(uint64_t id, bool notify);
  int set_write_limits(uint64_t id, uint32_t high, uint32_t low, uint32_t max);
  // Shuts down the write side once the queue is flushed. Returns 1 when this
  // closed the connection outright (the peer had already ended), else 0.
  int end(uint64_t id);
  // Closes once the queue is flushed: 1 if closed now, 0 if a kClosed record
  // will follow. Also closes listeners.
  int close(uint64_t id);
  // Closes now with a reset; queued bytes are dropped.
  int abort(uint64_t id);
  int set_no_delay(uint64_t id, bool enable);
  int set_keep_alive(uint64_t id, bool enable, int idle_seconds, int interval_seconds, int count);
  int address(uint64_t id, bool peer, SocketAddress* out);
  int64_t queued_bytes(uint64_t id);
  // Closes every listener and connection without records.
  void close_all();

  const Stats& stats() const { return stats_; }
  size_t open_connections() const { return open_; }
  size_t queued_connections() const { return queued_; }

  // Timers, in milliseconds of the monotonic clock.
  int64_t timer_start(uint64_t delay_ms);
  bool timer_cancel(uint64_t id);
  bool timer_reset(uint64_t id, uint64_t delay_ms);
  bool timer_keep_alive(uint64_t id, bool keep_alive) {
    return timers_.set_keeps_alive(Id::unpack(id), keep_alive);
  }
  size_t timers_keeping_alive() const { return timers_.keeping_alive(); }
  // The earliest timer or connection deadline on the now_ms() clock, or
  // TimerHeap::kNever.
  uint64_t next_timer_deadline() const {
    return std::min(timers_.next_deadline(), deadlines_.next_deadline());
  }
  size_t pending_timers() const { return timers_.size(); }

  // One wake-up: collect ready events without blocking, handle at most one
  // batch of them, deliver the records and apply interest changes.
  int poll();
  // Fire due timers and connection deadlines and deliver their records.
  void run_timers();
  // Serve connections whose slot freed outside a wake-up and apply interest
  // changes recorded since the last wait; the binding calls this before its
  // loop blocks.
  void prepare_wait();
  bool has_pending_changes() const {
    return !dirty_.empty() || !to_serve_.empty() || !to_unhold_.empty();
  }
  // Listeners and connections that should keep the process alive.
  size_t live_handles() const { return table_.used(); }

  static uint64_t now_ms();

 private:
  enum class Kind : uint8_t { kStream, kListener };
  enum class State : uint8_t {
    kConnecting,
    kOpen,
    kClosing,    // close() with bytes queued: flush, then close
    kParked,     // over its listener's cap: accepted, not read, not yet known to JavaScript
    kLingering,  // write side shut; input discarded until the peer closes or a deadline
  };

  struct Conn {
    int fd = -1;
    Kind kind = Kind::kStream;
    State state = State::kOpen;
    uint8_t registered = kUnregistered;  // interest the poller has now
    bool tcp : 1;
    bool visible : 1;          // JavaScript has a transport for it: its close is reported
    bool reading : 1;          // wants input (false once the peer ended or after close())
    bool paused : 1;           // reading paused by JavaScript
    bool hup_seen : 1;         // hang-up while paused: detached until resumed
    bool end_requested : 1;    // shut down the write side once flushed
    bool close_requested : 1;  // close() while connecting: close once connected and flushed
    bool write_shut : 1;
    bool peer_ended : 1;
    bool dirty : 1;
    bool drain_wanted : 1;  // passed the high watermark: report kDrain at the low one
    bool idle_notify : 1;   // idle expiry goes to JavaScript
    bool idle_resets_on_write : 1;
    bool reaped : 1;       // ended for idleness: its close reports kReasonIdle
    bool backoff : 1;      // listener: accepting paused after EMFILE
    bool at_cap : 1;       // listener: accepting paused at the cap (clients wait in the backlog)
    bool backlog_cap : 1;  // listener: its cap leaves clients in the backlog (accepts on readiness)
    int error = 0;         // a failed send, reported on the next event
    uint32_t idle_ms = 0;
    uint32_t grace_ms = 0;
    uint32_t high_water = 0;
    uint32_t low_water = 0;
    uint32_t max_write = 0;
    uint64_t last_active = 0;   // ms of the last read (and write, if it counts)
    Id listener{kMaxSlots, 0};  // the listener that accepted it, for its cap
    WriteQueue queue;

    Conn()
        : tcp(false),
          visible(false),
          reading(false),
          paused(false),
          hup_seen(false),
          end_requested(false),
          close_requested(false),
          write_shut(false),
          peer_ended(false),
          dirty(false),
          drain_wanted(false),
          idle_notify(false),
          idle_resets_on_write(false),
          reaped(false),
          backoff(false),
          at_cap(false),
          backlog_cap(false) {}
  };
  static constexpr uint8_t kUnregistered = 0xff;
  static constexpr uint32_t kDetached = 0x80;  // desired interest: not watched at all

  // Takes fd into the table and claims its place in the backend (closing it,
  // unless !close_on_failure, if the table is full or the backend cannot
  // watch it).
  Conn* adopt(int fd, Kind kind, State state, bool tcp, Id* id, bool close_on_failure = true);
  // Checks, prepares and takes in a socket made elsewhere (adopt_listener,
  // adopt_connection); fd stays the caller's on failure.
  Conn* adopt_foreign(int fd, Kind kind, bool require_tcp, Id* id, int* error);
  // Claims fd's place in the backend, noting it in *claimed.
  bool claim_for(int fd, int* claimed);
  // A connecting socket (or -errno from starting it, with the fd whose claim
  // to give back, or -1) becomes a connection.
  int64_t adopt_outgoing(int fd, int claimed, bool tcp);
  Conn* find(uint64_t id, Id* out);
  Conn* find_stream(uint64_t id, Id* out);
  Admission* admission_of(Id listener);
  void mark_dirty(Id id, Conn* c);
  uint32_t desired_interest(const Conn& c) const;
  void apply_interest();
  void apply_defaults(Conn* c, const ConnDefaults& defaults);

  // Admission: every accepted connection is served, parked or rejected.
  void admit(Id listener, Admission* admission, int fd);
  void serve(Id id, Conn* c, Id listener, Admission* admission);
  void park(Id id, Conn* c, Admission* admission);
  void reject(Id id, Conn* c, const AdmissionPolicy& policy);
  void refuse_unwatchable(int fd, const AdmissionPolicy& policy);
  void leave_queue(Id id, Conn* c);
  void serve_waiting();
  void settle();
  void on_parked_event(Id id, Conn* c, const PollEvent& event);
  void start_backoff(Id listener, Conn* l);
  void end_backoffs();

  // Deadlines: idle timeouts, grace periods, queue timeouts, accept backoff.
  void start_idle_clock(Id id, Conn* c);
  void on_deadline(Id id, Conn* c, uint64_t now);
  void reap(Id id, Conn* c);
  // Shuts the write side once flushed and discards input until the peer
  // closes or `ms` pass.
  void linger(Id id, Conn* c, uint32_t ms);

  void on_event(const PollEvent& event);
  // Completions (Poller::receives()): bytes or an end the backend received,
  // a connection it accepted.
  void on_completion(const PollEvent& event);
  void on_accepted(Id listener, int result);
  void on_received(Id id, const uint8_t* data, size_t length);
  void on_received_end(Id id, int result);
  // Copies bytes into the slab as kData records. Returns false once the
  // connection is gone.
  bool take(Id id, const uint8_t* data, size_t length);
  void start_new_slab();
  // Input that arrived while paused waits here, in order, until resume.
  bool holds(Id id, const Conn& c) const;
  bool data_in_batch(Id id) const;
  void serve_held();
  void on_listener_ready(Id id);
  void take_accepted(Id listener, bool tcp, Admission* admission, int fd);
  void on_connect_ready(Id id, Conn* c);
  void on_stream_ready(Id id, Conn* c, const PollEvent& event);
  // Each returns false once the connection is gone.
  bool read_once(Id id, Conn* c);
  bool flush(Id id, Conn* c);
  bool after_drain(Id id, Conn* c);

  void emit(RecordKind kind, Id id, int32_t a = 0, int32_t b = 0);
  void deliver();
  // Closes the fd and frees the slot, reporting kClosed if JavaScript knows
  // the connection (why: kReasonIdle by default for a reaped one).
  void release(Id id, Conn* c, int error, CloseReason why = kReasonNone);
  // The same without a record: JavaScript closed it, or never knew it.
  // reported: a kClosed record follows, so the slot waits for its delivery.
  void forget(Id id, Conn* c, bool reported = false);
  static uint64_t start_ms();
  // now + delay on the rounded-up clock; a zero delay is due at once.
  static uint64_t deadline_after(uint64_t delay_ms);

  std::unique_ptr<Poller> poller_;
  Sink* sink_;
  Record* records_;
  size_t record_capacity_;
  size_t record_count_ = 0;
  LoopLimits limits_;
  Slab slab_;
  size_t slab_used_ = 0;
  size_t undelivered_from_ = 0;  // slab bytes read since the last delivery start here

  SlotTable<Conn> table_;
  TimerHeap timers_;
  DeadlineHeap deadlines_;  // by connection slot
  std::vector<Id> dirty_;
  std::vector<PollEvent> events_;
  std::unordered_map<uint32_t, Admission> admissions_;  // by listener slot
  std::vector<Id> to_serve_;    // listeners whose cap has room and whose queue may not be empty
  std::vector<Id> backed_off_;  // listeners not accepting after EMFILE
  uint32_t backoff_ms_;
  std::vector<uint8_t> discard_;  // input of lingering connections is read into this
  // Received while paused (a cancelled recv still posting), by slot: bytes,
  // then an end of stream or an error.
  struct Held {
    std::string bytes;
    bool ended = false;
    int error = 0;
  };
  std::unordered_map<uint32_t, Held> held_;
  std::vector<Id> to_unhold_;         // resumed connections with held input
  std::vector<uint64_t> data_batch_;  // by slot: the batch its last kData record went out with
  Stats stats_;
  size_t open_ = 0;    // connections JavaScript knows
  size_t queued_ = 0;  // parked
};

}  // namespace reactor
