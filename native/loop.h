// The reactor core: connection table, accept/read/write paths, timers and the
// batch of event records handed to JavaScript. Knows nothing of Node: the
// binding (addon.cc) drives it and supplies a Sink; the native tests drive it
// directly.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

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
  kClosed = 5,     // the loop closed the connection; a: errno or 0
  kTimer = 6,      // slot/gen name a timer
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
  int64_t connect_tcp(const std::string& host, int port);
  int64_t connect_unix(const std::string& path);

  // Sends what the socket takes now and queues the rest. Returns the bytes
  // queued afterwards, or -errno if id is not an open connection. A socket
  // error is reported later as a kClosed record, like every other failure.
  int64_t write(uint64_t id, const iovec* chunks, int count);
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

  // Timers, in milliseconds of the monotonic clock.
  int64_t timer_start(uint64_t delay_ms);
  bool timer_cancel(uint64_t id);
  bool timer_reset(uint64_t id, uint64_t delay_ms);
  bool timer_keep_alive(uint64_t id, bool keep_alive) {
    return timers_.set_keeps_alive(Id::unpack(id), keep_alive);
  }
  size_t timers_keeping_alive() const { return timers_.keeping_alive(); }
  // The earliest timer deadline on the now_ms() clock, or TimerHeap::kNever.
  uint64_t next_timer_deadline() const { return timers_.next_deadline(); }
  size_t pending_timers() const { return timers_.size(); }

  // One wake-up: collect ready events without blocking, handle at most one
  // batch of them, deliver the records and apply interest changes.
  int poll();
  // Fire due timers and deliver their records.
  void run_timers();
  // Apply interest changes recorded since the last wait; the binding calls
  // this before its loop blocks.
  void prepare_wait();
  bool has_pending_changes() const { return !dirty_.empty(); }
  // Listeners and connections that should keep the process alive.
  size_t live_handles() const { return table_.used(); }

  static uint64_t now_ms();

 private:
  enum class Kind : uint8_t { kStream, kListener };
  enum class State : uint8_t { kConnecting, kOpen, kClosing };

  struct Conn {
    int fd = -1;
    Kind kind = Kind::kStream;
    State state = State::kOpen;
    bool tcp = false;
    bool reading = false;
    bool end_requested = false;    // shut down the write side once flushed
    bool close_requested = false;  // close() while connecting: close once connected and flushed
    bool write_shut = false;
    bool peer_ended = false;
    bool dirty = false;
    uint8_t registered = kUnregistered;  // interest the poller has now
    int error = 0;                       // a failed send, reported on the next event
    WriteQueue queue;
  };
  static constexpr uint8_t kUnregistered = 0xff;

  int64_t adopt(int fd, Kind kind, State state, bool tcp);
  Conn* find(uint64_t id, Id* out);
  void mark_dirty(Id id, Conn* c);
  uint32_t desired_interest(const Conn& c) const;
  void apply_interest();

  void on_event(const PollEvent& event);
  void on_listener_ready(Id id);
  void on_connect_ready(Id id, Conn* c);
  void on_stream_ready(Id id, Conn* c, const PollEvent& event);
  // Each returns false once the connection is gone.
  bool read_once(Id id, Conn* c);
  bool flush(Id id, Conn* c);
  bool after_drain(Id id, Conn* c);
  void handle_accept_exhaustion(int listen_fd);

  void emit(RecordKind kind, Id id, int32_t a = 0, int32_t b = 0);
  void deliver();
  // Closes the fd and frees the slot; `report` emits kClosed with `error`.
  void release(Id id, Conn* c, bool report, int error);

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
  std::vector<Id> dirty_;
  std::vector<PollEvent> events_;
  std::unordered_map<uint32_t, std::string> unix_paths_;  // listener slot -> path to unlink
  int reserve_fd_ = -1;  // released to accept-and-drop when fds run out
};

}  // namespace reactor
