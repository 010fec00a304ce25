// The reactor core's public face: what the binding (addon.cc) and the native
// tests drive. Knows nothing of Node: the binding supplies a Sink. The state
// and the paths behind it are in loop_core.h, split by concern (loop.cc: the
// table, the wake-up and the records; listeners.cc, streams.cc, deadlines.cc,
// completions.cc, watchers.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "admission.h"
#include "http_server.h"
#include "platform.h"
#include "poller.h"
#include "sockets.h"
#include "udp.h"

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
  kWatch = 9,      // a watcher's descriptor is ready; a: WatchFlags, b: errno with kWatchError
  // A UDP socket received a datagram: a is the slab offset of its source (a
  // PackedAddress, 24 bytes, 8-aligned) with the payload right after it; b is
  // the payload's length.
  kDatagram = 10,
  kDatagramError = 11,  // a UDP socket's error, not closing it; a: errno, b: UdpOperation
  // An HTTP connection's request head: a, b: offset and length in the slab of
  // its descriptor (http_server.h). Its body follows as kHttpBody (a, b: the
  // decoded bytes in the slab), its end as kHttpEnd.
  kHttpRequest = 12,
  kHttpBody = 13,
  kHttpEnd = 14,
};

// What a kWatch record reports. After kWatchHangup or kWatchError the watcher
// is stopped until watch_update(); after kWatchClosed it is gone.
enum WatchFlags : int32_t {
  kWatchReadable = 1,
  kWatchWritable = 2,
  kWatchHangup = 4,   // the other end hung up: nothing more will arrive
  kWatchError = 8,    // b: SO_ERROR for a socket, EIO otherwise, EBADF with kWatchClosed
  kWatchClosed = 16,  // the descriptor was closed behind the watcher's back (EBADF): it is gone
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
  uint64_t emfile = 0;         // accept() failed for want of descriptors
  uint64_t http_requests = 0;  // request heads handed to JavaScript
  uint64_t http_refused = 0;   // answered natively (400, 408, 413, 431, 505) and closed
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

class LoopCore;

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

  const char* backend() const;
  int pollable_fd() const;

  // Listeners and connections. Each returns a packed Id (>= 0) or -errno.
  int64_t listen_tcp(const std::string& host, int port, const ListenOptions& options);
  int64_t listen_unix(const std::string& path, const ListenOptions& options);
  // Caps, queue and connection defaults of a listener (default: none).
  int configure_listener(uint64_t id, const AdmissionPolicy& policy, const ConnDefaults& defaults);
  // Served and parked connections of a listener.
  int listener_counts(uint64_t id, uint32_t* open, uint32_t* queued);
  // Connections a listener accepted that are still open, whether or not the
  // listener still is (a closed server draining): a walk of the table.
  size_t connections_of(uint64_t listener) const;
  // Stops taking connections from a listening socket without closing it (a
  // draining worker's, shared with its replacement): those accepted already,
  // or completed by the backend meanwhile, are served as usual. -EBADF if
  // `listener` is none.
  int stop_accepting(uint64_t listener);
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

  // Watchers: readiness of a descriptor that stays the caller's (a pipe, a
  // tty, an eventfd, a socket made elsewhere), level-triggered, reported as
  // kWatch records. interest: kReadable and/or kWritable, or kNone (stopped).
  // watch() registers at once, so the backend's refusal is its result: the
  // id, or -EBADF (fd not open), -EEXIST (the loop has fd already: its own
  // socket, or watched), -EMFILE (table full, or select beyond FD_SETSIZE),
  // -EPERM (epoll: a regular file), -ENOTSUP on Windows. close(id) stops it
  // and never closes fd. Closing fd before close(id) is the caller's error,
  // reported (kWatchClosed) where it shows: the loop taking in a socket with
  // fd's number, poll's POLLNVAL, a failed select, watch_update().
  int64_t watch(int fd, uint32_t interest);
  // The new interest, applied at once; restarts a watcher stopped by a
  // hang-up or error. -EBADF if id is no watcher or fd turned out closed (the
  // watcher is gone then, without a record).
  int watch_update(uint64_t id, uint32_t interest);
  // Whether an open watcher keeps the process alive (live_handles()); the
  // default is yes, like a listener.
  int watch_keep_alive(uint64_t id, bool keep_alive);

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
  // Connections share equal limits (native/conn_limits.h): -ENOMEM when other
  // values need a record and memory runs out, as for set_idle_timeout's grace.
  int set_write_limits(uint64_t id, uint32_t high, uint32_t low, uint32_t max);
  // Shuts down the write side once the queue is flushed. Returns 1 when this
  // closed the connection outright (the peer had already ended), else 0.
  int end(uint64_t id);
  // Closes once the queue is flushed: 1 if closed now, 0 if a kClosed record
  // will follow. Also closes listeners, and stops watchers (1).
  int close(uint64_t id);
  // Closes now with a reset; queued bytes are dropped.
  int abort(uint64_t id);
  int set_no_delay(uint64_t id, bool enable);
  int set_keep_alive(uint64_t id, bool enable, int idle_seconds, int interval_seconds, int count);
  int address(uint64_t id, bool peer, SocketAddress* out);
  int64_t queued_bytes(uint64_t id);
  // UDP sockets (udp.h).
  UdpSockets udp();

  // HTTP/1.1 (http_server.h): makes a listener an HTTP one before it accepts;
  // its connections' bytes are parsed natively (kHttpRequest, kHttpBody,
  // kHttpEnd), one request at a time, and refused requests answered without
  // JavaScript. -EBADF if id is no listener.
  int configure_http(uint64_t listener, const http::ServerConfig& config);
  // The response to the connection's request in progress: head (first call
  // only, else null), body bytes (framed: Content-Length when the whole body
  // comes with the head and end, else chunked, or close-delimited for
  // HTTP/1.0), end. Returns the bytes queued, or -EBADF (no connection),
  // -EPIPE (no request waits for a response), -EINVAL (a head twice, or
  // none first), or write()'s errors.
  int64_t http_respond(uint64_t id, const http::ResponseHead* head, const iovec* body, int count,
                       bool end);
  // Pauses (false) or resumes the request body's records.
  int http_set_body_reading(uint64_t id, bool reading);
  // Closes every listener and connection without records.
  void close_all();

  const Stats& stats() const;
  size_t open_connections() const;
  size_t queued_connections() const;

  // Timers, in milliseconds of the monotonic clock.
  static constexpr uint64_t kNever = UINT64_MAX;
  int64_t timer_start(uint64_t delay_ms);
  bool timer_cancel(uint64_t id);
  bool timer_reset(uint64_t id, uint64_t delay_ms);
  bool timer_keep_alive(uint64_t id, bool keep_alive);
  size_t timers_keeping_alive() const;
  // The earliest timer or connection deadline on the now_ms() clock, or
  // kNever.
  uint64_t next_timer_deadline() const;
  size_t pending_timers() const;

  // One wake-up: collect ready events without blocking, handle at most one
  // batch of them, deliver the records and apply interest changes.
  int poll();
  // Fire due timers and connection deadlines and deliver their records.
  void run_timers();
  // Serve connections whose slot freed outside a wake-up and apply interest
  // changes recorded since the last wait; the binding calls this before its
  // loop blocks.
  void prepare_wait();
  bool has_pending_changes() const;
  // Listeners, connections and watchers that should keep the process alive.
  size_t live_handles() const;

  static uint64_t now_ms();

 private:
  std::unique_ptr<LoopCore> core_;
};

}  // namespace reactor
