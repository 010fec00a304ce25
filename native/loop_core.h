// The reactor core behind Loop (loop.h): the table of handles and the state
// of every path. One class whose members are defined by concern:
//   loop.cc         the table, interest, the wake-up and the records
//   listeners.cc    listening sockets and admission (caps, queue, backoff)
//   streams.cc      connections: connect, read, write, end, close, options
//   deadlines.cc    timers and per-handle deadlines (idle, grace, queue, backoff)
//   completions.cc  what a completion backend (io_uring) already did: accepts
//                   and receives, and the input it took while a connection
//                   was paused
//   watchers.cc     descriptors the loop watches but does not own
//   http_connections.cc  HTTP listeners' connections: requests parsed in the
//                   read path, responses written
//   proxy_headers.cc  PROXY protocol listeners' connections: the header read
//                   before admission
// Private to the core: the binding includes loop.h only.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "admission.h"
#include "deadline_heap.h"
#include "fd_table_reserve.h"
#include "held_input.h"
#include "http_server.h"
#include "idle_lists.h"
#include "kind_record.h"
#include "loop.h"
#include "poller.h"
#include "proxy_protocol.h"
#include "slot_table.h"
#include "sockets.h"
#include "timer_heap.h"
#include "udp_socket.h"
#include "write_queue.h"

namespace reactor {

inline bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK; }

// A listening socket's own state: whom it admits and how, its Unix path, and
// why it is not accepting now.
struct Listener : KindRecord {
  Admission admission;
  SharedLimits limits;    // admission.defaults.limits, shared by the connections it accepts
  std::string unix_path;  // removed when the listener closes; empty when not ours
  bool backoff = false;   // accepting paused after EMFILE/ENFILE
  bool at_cap = false;    // accepting paused at the cap (clients wait in the backlog)
  // Told to stop accepting (a draining worker): the socket stays open, and its
  // clients wait for the processes sharing it. Accepts already made are served.
  bool stopped = false;
  std::unique_ptr<http::ListenerHttp> http;  // an HTTP listener's (http_connections.cc)
};

class LoopCore {
 public:
  LoopCore(std::unique_ptr<Poller> poller, Sink* sink, Record* records, size_t record_capacity,
           LoopLimits limits);
  ~LoopCore();

  // The operations of Loop, as loop.h documents them.
  int64_t listen_tcp(const std::string& host, int port, const ListenOptions& options);
  int64_t listen_unix(const std::string& path, const ListenOptions& options);
  int configure_listener(uint64_t id, const AdmissionPolicy& policy, const ConnDefaults& defaults);
  int listener_counts(uint64_t id, uint32_t* open, uint32_t* queued);
  size_t connections_of(Id listener) const;
  int stop_accepting(uint64_t listener);
  int64_t connect_tcp(const std::string& host, int port);
  int64_t connect_unix(const std::string& path);
  int64_t adopt_listener(int fd, bool require_tcp);
  int64_t adopt_connection(int fd);
  int64_t watch(int fd, uint32_t interest);
  int watch_update(uint64_t id, uint32_t interest);
  int watch_keep_alive(uint64_t id, bool keep_alive);
  int64_t write(uint64_t id, const iovec* chunks, int count);
  int set_reading(uint64_t id, bool reading);
  int set_idle_timeout(uint64_t id, uint32_t ms, bool resets_on_write, uint32_t grace_ms);
  int set_idle_notify(uint64_t id, bool notify);
  int set_write_limits(uint64_t id, uint32_t high, uint32_t low, uint32_t max);
  int end(uint64_t id);
  int close(uint64_t id);
  int abort(uint64_t id);
  int set_no_delay(uint64_t id, bool enable);
  int set_keep_alive(uint64_t id, bool enable, int idle_seconds, int interval_seconds, int count);
  int address(uint64_t id, bool peer, SocketAddress* out);
  int proxy_address(uint64_t id, SocketAddress* out);
  int64_t queued_bytes(uint64_t id);
  // UDP sockets (udp.cc): the operations of UdpSockets, as udp.h documents them.
  int64_t udp_open(const std::string& host, int port, const DatagramOptions& options);
  int udp_send(uint64_t id, const void* data, size_t length, const std::string& host, int port,
               bool batch);
  int udp_connect(uint64_t id, const std::string& host, int port);
  int udp_disconnect(uint64_t id);
  int udp_set_reading(uint64_t id, bool reading);
  int udp_set_option(uint64_t id, UdpOption option, int value);
  int udp_set_multicast_interface(uint64_t id, const std::string& interface_address);
  int udp_set_membership(uint64_t id, const std::string& source, const std::string& group,
                         const std::string& interface_address, bool join);
  int udp_counters(uint64_t id, UdpCounters* out);
  int udp_close(uint64_t id);
  // HTTP (http_connections.cc), as loop.h documents them.
  int configure_http(uint64_t listener, const http::ServerConfig& config);
  int64_t http_respond(uint64_t id, const http::ResponseHead* head, const iovec* body, int count,
                       bool end);
  int http_set_body_reading(uint64_t id, bool reading);
  void close_all();
  int64_t timer_start(uint64_t delay_ms);
  bool timer_cancel(uint64_t id);
  bool timer_reset(uint64_t id, uint64_t delay_ms);
  int poll();
  void run_timers();
  void prepare_wait();
  bool has_pending_changes() const {
    return !dirty_.empty() || !to_serve_.empty() || held_.resumed() || !gone_.empty() ||
           !http_.to_resume.empty();
  }
  size_t live_handles() const { return table_.used() - unref_watchers_; }
  uint64_t next_deadline() const {
    return std::min({timers_.next_deadline(), deadlines_.next_deadline(), idle_.next_deadline()});
  }

  static uint64_t now_ms();

  std::unique_ptr<Poller> poller_;
  TimerHeap timers_;
  Stats stats_;
  size_t open_ = 0;    // connections JavaScript knows
  size_t queued_ = 0;  // parked

 private:
  enum class Kind : uint8_t { kStream, kListener, kWatcher, kDatagram };
  enum class State : uint8_t {
    kConnecting,
    kOpen,
    kClosing,    // close() with bytes queued: flush, then close
    kParked,     // over its listener's cap: accepted, not read, not yet known to JavaScript
    kLingering,  // write side shut; input discarded until the peer closes or a deadline
    // Accepted by a PROXY protocol listener, its header not yet read whole:
    // not admitted, not known to JavaScript (proxy_headers.cc).
    kAwaitingHeader,
  };

  // An entry of the table: a connection, a listening socket (`listening`
  // holds what only listeners have) or a watcher (an fd that is not ours).
  struct Handle {
    int fd = -1;  // a watcher's is -1 once it let go of an fd closed behind its back
    Kind kind = Kind::kStream;
    State state = State::kOpen;
    uint8_t registered = kUnregistered;  // interest the poller has now
    uint8_t wanted = kNone;              // a watcher's interest: kReadable | kWritable
    bool tcp : 1;
    bool visible : 1;          // JavaScript has a transport for it: its close is reported
    bool reading : 1;          // wants input (false once the peer ended or after close())
    bool paused : 1;           // reading paused by JavaScript
    bool hup_seen : 1;         // hang-up while paused: detached until resumed (watchers.cc)
    bool end_requested : 1;    // shut down the write side once flushed
    bool close_requested : 1;  // close() while connecting: close once connected and flushed
    bool write_shut : 1;
    bool peer_ended : 1;
    bool dirty : 1;
    bool drain_wanted : 1;  // passed the high watermark: report kDrain at the low one
    bool idle_notify : 1;   // idle expiry goes to JavaScript
    bool idle_resets_on_write : 1;
    bool reaped : 1;  // ended for idleness: its close reports kReasonIdle
    bool unref : 1;   // a watcher that does not keep the process alive
    bool http : 1;    // accepted by an HTTP listener: its bytes go through the parser
    // A failed send's errno (small and positive), reported on the next
    // event; it and the bit after fill the bit-fields' word, keeping the
    // table entry small.
    uint16_t error : 15;
    // An HTTP connection that has had a response: between requests it is
    // idle keep-alive, which a draining server closes (a fresh one is
    // served its first request instead: it may be on its way).
    uint16_t http_served : 1;
    uint32_t idle_ms = 0;
    uint64_t last_active = 0;   // ms of the last read (and write, if it counts)
    IdleLinks idle;             // its place in idle_, when its idle deadline is there
    Id listener{kMaxSlots, 0};  // the listener that accepted it, for its cap
    WriteQueue queue;
    SharedLimits limits;                 // write limits and grace
    std::unique_ptr<KindRecord> record;  // a listener's Listener, a datagram socket's UdpSocket

    Handle()
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
          unref(false),
          http(false),
          error(0),
          http_served(0) {}
    Listener* listening() const { return static_cast<Listener*>(record.get()); }
    UdpSocket* udp() const { return static_cast<UdpSocket*>(record.get()); }
  };
  // Every connection pays for one entry: kept small for servers holding many
  // idle ones (BENCHMARKS.md, idle memory).
  static_assert(sizeof(void*) != 8 || SlotTable<Handle>::entry_size() == 72,
                "the table entry changed size");
  // IdleLists' view of the table: a handle's links and idle clock by slot.
  struct IdleNodes {
    SlotTable<Handle>* table;
    IdleLinks& links(uint32_t slot) { return table->at(slot).idle; }
    uint64_t last_active(uint32_t slot) const { return table->at(slot).last_active; }
  };
  static constexpr uint8_t kUnregistered = 0xff;
  static constexpr uint32_t kDetached = 0x80;  // desired interest: not watched at all

  // Takes fd into the table and claims its place in the backend (closing it,
  // unless !close_on_failure, if the table is full or the backend cannot
  // watch it).
  Handle* adopt(int fd, Kind kind, State state, bool tcp, Id* id, bool close_on_failure = true);
  // Checks, prepares and takes in a socket made elsewhere (adopt_listener,
  // adopt_connection); fd stays the caller's on failure.
  Handle* adopt_foreign(int fd, Kind kind, bool require_tcp, Id* id, int* error);
  // Whether a handle has fd (one entry per fd).
  bool holds_fd(int fd);
  // Claims fd's place in the backend, noting it in *claimed.
  bool claim_for(int fd, int* claimed);
  // A connecting socket (or -errno from starting it, with the fd whose claim
  // to give back, or -1) becomes a connection.
  int64_t adopt_outgoing(int fd, int claimed, bool tcp);
  Handle* find(uint64_t id, Id* out);
  Handle* find_stream(uint64_t id, Id* out);
  // The listener (and its admission) of a live listening handle, else null.
  Listener* listener_at(Id id);
  Admission* admission_of(Id listener);
  void mark_dirty(Id id, Handle* c);
  uint32_t desired_interest(const Handle& c) const;
  void apply_interest();
  // Gives the poller c's desired interest now. 0 or -errno.
  int register_interest(Id id, Handle* c);
  void apply_defaults(Handle* c, const ConnDefaults& defaults, const SharedLimits& limits);

  // Admission: every accepted connection is served, parked or rejected.
  void admit(Id listener, Admission* admission, int fd);
  // The same for a connection already in the table (its PROXY header read).
  void admit_adopted(Id id, Handle* c, Id listener, Admission* admission);
  // The per-peer cap's key: the client's IP (the PROXY header's, else the
  // socket peer's). False when there is none (a Unix socket).
  bool peer_key(Id id, const Handle& c, PeerKey* key);
  void serve(Id id, Handle* c, Id listener, Admission* admission);
  void park(Id id, Handle* c, Admission* admission);
  void reject(Id id, Handle* c, const AdmissionPolicy& policy);
  void refuse_unwatchable(int fd, const AdmissionPolicy& policy);
  void leave_queue(Id id, Handle* c);
  // A served or parked connection closes: its listener's counts drop, and a
  // listener stopped at its cap may accept again.
  void leave_listener(Id id, Handle* c);
  void serve_waiting();
  void settle();
  void on_parked_event(Id id, Handle* c, const PollEvent& event);
  void start_backoff(Id id, Listener* listener);
  int64_t add_listener(int fd, bool tcp, const std::string& unix_path);
  int close_listener(Id id, Handle* l);
  void end_backoffs();

  // Deadlines: idle timeouts, grace periods, queue timeouts, accept backoff.
  void start_idle_clock(Id id, Handle* c);
  // Activity: the idle clock starts again.
  void restart_idle_clock(Id id, Handle* c);
  // The rounded-up clock for activity: the wake-up's reading while the loop
  // handles its events (one clock read per wake-up instead of one per read,
  // as libuv's and nginx's cached loop time), a fresh reading otherwise.
  uint64_t activity_ms() const { return clock_fresh_ ? wake_ms_ : start_ms(); }
  // Puts c's idle deadline (last_active + idle_ms) in the list of its
  // timeout, or in deadlines_ when every list holds another timeout.
  void schedule_idle(Id id, Handle* c);
  // The slot whose deadline (idle list or heap) is due first, if one is by now.
  bool next_due(uint64_t now, uint32_t* slot) const;
  void on_deadline(Id id, Handle* c, uint64_t now);
  void reap(Id id, Handle* c);
  // Shuts the write side once flushed and discards input until the peer
  // closes or `ms` pass.
  void linger(Id id, Handle* c, uint32_t ms);

  // PROXY protocol listeners (proxy_headers.cc): a connection's header is
  // read before it is admitted.
  void await_proxy_header(Id id, Handle* c, const AdmissionPolicy& policy);
  void on_proxy_header_ready(Id id, Handle* c);
  void proxy_header_done(Id id, Handle* c, const proxy::Header& header);
  // Closes a connection whose header did not come, counted in *counter.
  void proxy_header_failed(Id id, Handle* c, uint64_t Stats::*counter);
  void proxy_header_timed_out(Id id, Handle* c);
  // Its listener closes: connections still awaiting their header are
  // rejected, as parked ones are.
  void drop_proxy_headers(Id listener);
  // Drops what the PROXY path keeps for c's slot.
  void forget_proxy(Id id, const Handle* c);

  // Watchers (watchers.cc).
  Handle* find_watcher(uint64_t id, Id* out);
  int close_watcher(Id id, Handle* w);
  void on_watcher_event(Id id, Handle* w, const PollEvent& event);
  // The loop takes in fd: a watcher still holding that number lost its fd.
  void evict_watcher(int fd);
  // Drops a watcher's registration and index entry; its fd stays open.
  void unwatch(Handle* w);
  // Reports EBADF (kWatchClosed) and forgets the watcher.
  void finish_watcher(Id id);
  void report_gone();

  // UDP sockets (udp.cc).
  Handle* find_datagram(uint64_t id, Id* out);
  uint32_t datagram_interest(const Handle& c) const;
  void on_datagram_ready(Id id, Handle* c, const PollEvent& event);
  void receive_datagrams(Id id, Handle* c);
  // Sends what the queue holds until the kernel has no room.
  void flush_datagrams(Id id, Handle* c);
  // A failure to report in the next batch (the socket stays open).
  void datagram_failed(Id id, Handle* c, int error, UdpOperation operation);

  // HTTP connections (http_connections.cc). Bytes just read into the slab
  // (data, length): parsed into request records. Each returns false once the
  // connection is gone.
  bool http_received(Id id, Handle* c, const uint8_t* data, size_t length);
  bool http_parse(Id id, Handle* c, const uint8_t* data, size_t length);
  // Answers status natively (400, 408, 413, 431, 505) and closes.
  bool http_refuse(Id id, Handle* c, int status);
  // The request head as a descriptor in the slab, one kHttpRequest record.
  bool http_deliver_head(Id id, Handle* c, const http::RequestHead& head);
  http::ListenerHttp* http_listener(const Handle& c);
  // An idle deadline of an HTTP connection whose head or body is incomplete: 408.
  bool http_request_timed_out(Id id, Handle* c);
  void http_response_ended(Id id, Handle* c, http::Exchange* x);
  // Its listener closes: the connections between requests close now, as
  // node:http's server.close() does (the others after their response).
  void http_close_idle(Id listener);
  // Its listener stopped accepting (a worker's drain): see http_connections.cc.
  void http_drain(Id listener);
  template <typename Visit>
  void http_between_requests(Id listener, Visit visit);
  void http_resume_pending();

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
  bool holds(Id id, const Handle& c) const;
  bool data_in_batch(Id id) const;
  void serve_held();
  // Pausing: a completion backend stops taking input at once; resuming: what
  // it took meanwhile is served at the next settle.
  void stop_receiving(Id id, Handle* c);
  void resume_held(Id id, const Handle* c);
  void on_listener_ready(Id id);
  void take_accepted(Id listener, bool tcp, Admission* admission, int fd);
  void on_connect_ready(Id id, Handle* c);
  void on_stream_ready(Id id, Handle* c, const PollEvent& event);
  // Each returns false once the connection is gone.
  bool read_once(Id id, Handle* c);
  bool flush(Id id, Handle* c);
  bool after_drain(Id id, Handle* c);

  void emit(RecordKind kind, Id id, int32_t a = 0, int32_t b = 0);
  void deliver();
  // Closes the fd and frees the slot, reporting kClosed if JavaScript knows
  // the connection (why: kReasonIdle by default for a reaped one).
  void release(Id id, Handle* c, int error, CloseReason why = kReasonNone);
  // The same without a record: JavaScript closed it, or never knew it.
  // reported: a kClosed record follows, so the slot waits for its delivery.
  void forget(Id id, Handle* c, bool reported = false);
  static uint64_t start_ms();
  // now + delay on the rounded-up clock; a zero delay is due at once.
  static uint64_t deadline_after(uint64_t delay_ms);

  Sink* sink_;
  Record* records_;
  size_t record_capacity_;
  size_t record_count_ = 0;
  LoopLimits limits_;
  Slab slab_;
  size_t slab_used_ = 0;
  size_t undelivered_from_ = 0;  // slab bytes read since the last delivery start here
  // start_ms() as read when the wake-up's events began, or when JavaScript last
  // returned during them; never older than a clock an idle list holds, so the
  // lists stay in deadline order.
  uint64_t wake_ms_ = 0;
  bool clock_fresh_ = false;  // wake_ms_ is the time now: no JavaScript ran since

  SlotTable<Handle> table_;
  FdTableReserve fd_table_;                        // grown ahead of the descriptors the table takes
  DeadlineHeap deadlines_;                         // by slot: every deadline that is not in idle_
  IdleLists<IdleNodes> idle_{IdleNodes{&table_}};  // idle deadlines, one FIFO per timeout
  std::vector<Id> dirty_;
  std::vector<PollEvent> events_;
  std::vector<Id> to_serve_;    // listeners whose cap has room and whose queue may not be empty
  std::vector<Id> backed_off_;  // listeners not accepting after EMFILE
  uint32_t backoff_ms_;
  std::vector<uint8_t> discard_;      // input of lingering connections is read into this
  HeldInput held_;                    // input received while paused (completion backends)
  std::vector<uint64_t> data_batch_;  // by slot: the batch its last kData record went out with
  std::unordered_map<int, Id> watchers_by_fd_;
  std::vector<Id> gone_;       // watchers evicted from their fd, reported at the next settle()
  size_t unref_watchers_ = 0;  // open watchers that do not keep the process alive
  std::unique_ptr<DatagramScratch> datagram_scratch_;  // made with the first UDP socket
  http::Exchanges http_;  // HTTP connections' requests in progress, by slot
  // By slot: the parsers of connections awaiting their PROXY header, then
  // the client each header named (family kNone: the socket's own peer
  // stands, as for LOCAL and UNKNOWN).
  std::unordered_map<uint32_t, proxy::Parser> proxy_parsers_;
  std::unordered_map<uint32_t, SocketAddress> proxied_;
};

}  // namespace reactor
