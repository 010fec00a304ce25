// The only file that speaks Node-API. createReactor() wraps one Loop and
// nests it in Node's libuv loop: a uv_poll on the backend's fd, a uv_timer
// armed to the earliest native deadline and a uv_prepare that applies interest
// changes before libuv blocks. Records reach JavaScript in one MakeCallback
// per batch. All state hangs off the returned object's functions or the
// environment's cleanup hook; nothing is static.
#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loop.h"

namespace reactor {
namespace {

#ifdef _WIN32
// The core reports errors by their <errno.h> names (platform.h); libuv on
// Windows numbers them its own way, and JavaScript names them with libuv.
int js_errno(int error) {
  switch (error) {
#define REACTOR_UV_ERROR(name) \
  case name:                   \
    return -UV_##name;
    REACTOR_UV_ERROR(EACCES)
    REACTOR_UV_ERROR(EADDRINUSE)
    REACTOR_UV_ERROR(EADDRNOTAVAIL)
    REACTOR_UV_ERROR(EAFNOSUPPORT)
    REACTOR_UV_ERROR(EAGAIN)
    REACTOR_UV_ERROR(EALREADY)
    REACTOR_UV_ERROR(EBADF)
    REACTOR_UV_ERROR(ECONNABORTED)
    REACTOR_UV_ERROR(ECONNREFUSED)
    REACTOR_UV_ERROR(ECONNRESET)
    REACTOR_UV_ERROR(EEXIST)
    REACTOR_UV_ERROR(EFAULT)
    REACTOR_UV_ERROR(EHOSTUNREACH)
    REACTOR_UV_ERROR(EINTR)
    REACTOR_UV_ERROR(EINVAL)
    REACTOR_UV_ERROR(EIO)
    REACTOR_UV_ERROR(EISCONN)
    REACTOR_UV_ERROR(EMFILE)
    REACTOR_UV_ERROR(EMSGSIZE)
    REACTOR_UV_ERROR(ENAMETOOLONG)
    REACTOR_UV_ERROR(ENETDOWN)
    REACTOR_UV_ERROR(ENETUNREACH)
    REACTOR_UV_ERROR(ENFILE)
    REACTOR_UV_ERROR(ENOBUFS)
    REACTOR_UV_ERROR(ENOENT)
    REACTOR_UV_ERROR(ENOMEM)
    REACTOR_UV_ERROR(ENOPROTOOPT)
    REACTOR_UV_ERROR(ENOTCONN)
    REACTOR_UV_ERROR(ENOTSUP)
    REACTOR_UV_ERROR(EPIPE)
    REACTOR_UV_ERROR(EPROTONOSUPPORT)
    REACTOR_UV_ERROR(ETIMEDOUT)
#undef REACTOR_UV_ERROR
    default:
      return -UV_UNKNOWN;
  }
}
#else
int js_errno(int error) { return error; }  // libuv numbers them as the system does
#endif

constexpr size_t kRecordCapacity = 1024;
constexpr size_t kSlabSize = 1024 * 1024;

// Owns the loop and the libuv handles. Freed when its JavaScript functions
// are collected and every libuv handle has finished closing, whichever is last.
class Core final : public Sink {
 public:
  Core(Napi::Env env, std::unique_ptr<Poller> poller, Napi::Function dispatch,
       Napi::Function allocate_slab, Napi::Object resource)
      : env_(env),
        async_context_(std::make_unique<Napi::AsyncContext>(env, "NativeReactor", resource)) {
    dispatch_ = Napi::Persistent(dispatch);
    allocate_slab_ = Napi::Persistent(allocate_slab);
    resource_ = Napi::Persistent(resource);
    Napi::ArrayBuffer records = Napi::ArrayBuffer::New(env, kRecordCapacity * sizeof(Record));
    records_ = Napi::Persistent(records);
    loop_ = std::make_unique<Loop>(std::move(poller), this, static_cast<Record*>(records.Data()),
                                   kRecordCapacity);

    uv_loop_t* uv = nullptr;
    napi_get_uv_event_loop(env, &uv);
#ifdef _WIN32
    uv_poll_init_socket(uv, &poll_, native_socket(loop_->pollable_fd()));
#else
    uv_poll_init(uv, &poll_, loop_->pollable_fd());
#endif
    uv_timer_init(uv, &timer_);
    uv_prepare_init(uv, &prepare_);
    for (uv_handle_t* h : handles()) {
      h->data = this;
      uv_unref(h);
    }
    uv_poll_start(&poll_, UV_READABLE, on_poll);
    napi_add_env_cleanup_hook(env, on_env_cleanup, this);
  }

  Loop* loop() { return closed_ ? nullptr : loop_.get(); }
  Napi::ArrayBuffer records() { return records_.Value(); }

  // Keeps libuv in step with the loop: the poll handle holds the process open
  // while listeners or connections exist, the timer while ref'd timers are pending,
  // and interest changes get applied before libuv next blocks.
  void sync() {
    if (closed_) return;
    bool live = loop_->live_handles() > 0;
    if (live != poll_ref_) {
      live ? uv_ref(handle(&poll_)) : uv_unref(handle(&poll_));
      poll_ref_ = live;
    }
    uint64_t deadline = loop_->next_timer_deadline();
    if (deadline != armed_deadline_) {
      armed_deadline_ = deadline;
      if (deadline == TimerHeap::kNever) {
        uv_timer_stop(&timer_);
      } else {
        uint64_t now = Loop::now_ms();
        uv_timer_start(&timer_, on_timer, deadline > now ? deadline - now : 0, 0);
      }
    }
    bool timers_live = loop_->timers_keeping_alive() > 0;
    if (timers_live != timer_ref_) {
      timers_live ? uv_ref(handle(&timer_)) : uv_unref(handle(&timer_));
      timer_ref_ = timers_live;
    }
    if (loop_->has_pending_changes() && !uv_is_active(handle(&prepare_))) {
      uv_prepare_start(&prepare_, on_prepare);
    }
  }

  // Closes every socket and handle; no callback reaches JavaScript afterwards.
  void shutdown() {
    if (closed_) return;
    closed_ = true;
    napi_remove_env_cleanup_hook(env_, on_env_cleanup, this);
    // Stop libuv watching the backend fd before that fd is closed.
    for (uv_handle_t* h : handles()) uv_close(h, on_handle_closed);
    loop_->close_all();
    release_loop();
    // Release every Node-API resource now, while the environment is alive:
    // the handles may finish closing after it is gone.
    async_context_.reset();
    dispatch_.Reset();
    resource_.Reset();
    records_.Reset();
    slab_.Reset();
    allocate_slab_.Reset();
  }

  // JavaScript functions that can reach this Core; the last one to be
  // collected shuts it down.
  void retain() { js_refs_++; }
  void release() {
    if (--js_refs_ > 0) return;
    shutdown();
    free_if_done();
  }

  bool deliver(const Record* records, size_t count) override {
    if (closed_) return false;
#ifdef _WIN32
    // The records live in our own ArrayBuffer.
    Record* out = const_cast<Record*>(records);
    for (size_t i = 0; i < count; i++) {
      if (out[i].kind == kClosed && out[i].a > 0) out[i].a = js_errno(out[i].a);
    }
#else
    (void)records;
#endif
    napi_value slab = slab_changed_ ? slab_.Value() : env_.Undefined();
    slab_changed_ = false;
    napi_value args[] = {Napi::Number::New(env_, static_cast<double>(count)), slab};
    napi_value result;
    // Plain Node-API here: while a worker terminates, JavaScript cannot run
    // and node-addon-api's error path would abort the process.
    if (napi_make_callback(env_, static_cast<napi_async_context>(*async_context_),
                           resource_.Value(), dispatch_.Value(), 2, args, &result) == napi_ok) {
      bool released = false;
      napi_get_value_bool(env_, result, &released);  // false unless the dispatcher said true
      return released;
    }
    napi_value error = nullptr;
    bool pending = false;
    napi_is_exception_pending(env_, &pending);
    if (pending) napi_get_and_clear_last_exception(env_, &error);
    napi_valuetype type = napi_undefined;
    if (error) napi_typeof(env_, error, &type);
    // The dispatcher catches protocol errors itself; anything else that
    // escapes becomes an uncaught exception, as in node:net. A termination
    // carries no value and needs no report.
    if (type != napi_undefined && type != napi_null) napi_fatal_exception(env_, error);
    return false;
  }

  // Slabs come from JavaScript (Buffer.allocUnsafeSlow): Node-API can only
  // make zero-filled ArrayBuffers, and clearing 1 MiB per slab is a measurable
  // share of the cost of large messages.
  Slab fresh_slab() override {
    napi_value size = Napi::Number::New(env_, static_cast<double>(kSlabSize));
    napi_value buffer;
    void* data = nullptr;
    size_t length = 0;
    if (napi_call_function(env_, env_.Undefined(), allocate_slab_.Value(), 1, &size, &buffer) !=
            napi_ok ||
        napi_get_buffer_info(env_, buffer, &data, &length) != napi_ok) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env_, &ignored);
      return {};  // out of memory: reading waits for the next wake-up
    }
    slab_ = Napi::Persistent(Napi::Object(env_, buffer));
    slab_changed_ = true;
    return {static_cast<uint8_t*>(data), length};
  }

 private:
  static uv_handle_t* handle(void* h) { return static_cast<uv_handle_t*>(h); }
  std::vector<uv_handle_t*> handles() {
    return {handle(&poll_), handle(&timer_), handle(&prepare_)};
  }
  static Core* from(void* h) { return static_cast<Core*>(static_cast<uv_handle_t*>(h)->data); }

  // Destroys the loop (its backend fd) unless it is on the stack,
  // in which case the callback that entered it does so on the way out.
  void release_loop() {
    if (running_ == 0) loop_.reset();
  }

  template <typename Step>
  void run(Step step) {
    Napi::HandleScope scope(env_);
    if (closed_) return;
    running_++;
    step(*loop_);
    running_--;
    if (closed_) {
      release_loop();
    } else {
      sync();
    }
  }

  static void on_poll(uv_poll_t* h, int, int) {
    from(h)->run([](Loop& loop) { loop.poll(); });
  }

  static void on_timer(uv_timer_t* h) {
    Core* core = from(h);
    core->armed_deadline_ = TimerHeap::kNever;  // one-shot: it is no longer armed
    core->run([](Loop& loop) { loop.run_timers(); });
  }

  static void on_prepare(uv_prepare_t* h) {
    uv_prepare_stop(h);
    from(h)->run([](Loop& loop) { loop.prepare_wait(); });
  }

  static void on_env_cleanup(void* data) { static_cast<Core*>(data)->shutdown(); }

  static void on_handle_closed(uv_handle_t* h) {
    Core* core = from(h);
    core->open_handles_--;
    core->free_if_done();
  }

  void free_if_done() {
    if (js_refs_ == 0 && open_handles_ == 0) delete this;
  }

  Napi::Env env_;
  std::unique_ptr<Napi::AsyncContext> async_context_;
  Napi::FunctionReference dispatch_;
  Napi::ObjectReference resource_;
  Napi::Reference<Napi::ArrayBuffer> records_;
  Napi::FunctionReference allocate_slab_;
  Napi::ObjectReference slab_;  // the current slab, a Buffer
  bool slab_changed_ = false;
  std::unique_ptr<Loop> loop_;
  uv_poll_t poll_{};
  uv_timer_t timer_{};
  uv_prepare_t prepare_{};
  uint64_t armed_deadline_ = TimerHeap::kNever;
  bool poll_ref_ = false;
  bool timer_ref_ = false;
  int running_ = 0;  // depth of loop calls on the stack
  bool closed_ = false;
  int js_refs_ = 0;
  int open_handles_ = 3;
};

// ---- the JavaScript-facing functions ----------------------------------------
//
// Each reactor object carries its own functions whose Node-API `data` is the
// Core, so a call costs no unwrap. Arguments are validated in src/ before
// they get here; results are numbers (negative errno on failure) so errors
// are built in one place on the JavaScript side.

struct Call {
  napi_env env;
  Core* core;
  size_t argc = 16;
  napi_value argv[16];

  Call(napi_env e, napi_callback_info info) : env(e) {
    void* data = nullptr;
    napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
    core = static_cast<Core*>(data);
  }
  double number(size_t i) const {
    double v = 0;
    napi_get_value_double(env, argv[i], &v);
    return v;
  }
  uint64_t id(size_t i) const { return static_cast<uint64_t>(number(i)); }
  int integer(size_t i) const { return static_cast<int>(number(i)); }
  // JavaScript passes 2^32 - 1 for "no limit".
  uint32_t u32(size_t i) const { return static_cast<uint32_t>(number(i)); }
  bool boolean(size_t i) const {
    bool v = false;
    napi_get_value_bool(env, argv[i], &v);
    return v;
  }
  std::string string(size_t i) const {
    size_t length = 0;
    napi_get_value_string_utf8(env, argv[i], nullptr, 0, &length);
    std::string v(length, '\0');
    napi_get_value_string_utf8(env, argv[i], v.data(), length + 1, &length);
    return v;
  }
  iovec bytes(napi_value value) const {
    void* data = nullptr;
    size_t length = 0;
    napi_get_buffer_info(env, value, &data, &length);
    return {data, length};
  }
  napi_value result(double v) const {
    napi_value out;
    napi_create_double(env, v, &out);
    return out;
  }
  // A count or id, or a failure as -errno in the numbering JavaScript's
  // util.getSystemErrorName() reads.
  napi_value outcome(double v) const { return result(v < 0 ? -js_errno(static_cast<int>(-v)) : v); }
};

// Runs op on the live loop, then brings libuv in step; -EBADF once closed.
template <typename Op>
napi_value with_loop(const Call& call, Op op) {
  Loop* loop = call.core->loop();
  if (!loop) return call.outcome(-EBADF);
  double value = static_cast<double>(op(*loop));
  call.core->sync();
  return call.outcome(value);
}

ListenOptions listen_options(const Call& call, size_t at) {
  ListenOptions options;
  options.backlog = call.integer(at);
  if (call.argc > at + 1) options.reuse_port = call.boolean(at + 1);
  if (call.argc > at + 2) options.ipv6_only = call.boolean(at + 2);
  return options;
}

const char* family_name(SocketAddress::Family family) {
  switch (family) {
    case SocketAddress::kIPv4:
      return "IPv4";
    case SocketAddress::kIPv6:
      return "IPv6";
    case SocketAddress::kUnix:
      return "unix";
    default:
      return "unknown";
  }
}

// listenTcp(host, port, backlog, reusePort, ipv6Only)
napi_value listen_tcp(napi_env env, napi_callback_info info) {
  Call call(env, info);
  std::string host = call.string(0);
  int port = call.integer(1);
  ListenOptions options = listen_options(call, 2);
  return with_loop(call, [&](Loop& l) { return l.listen_tcp(host, port, options); });
}

// listenUnix(path, backlog)
napi_value listen_unix(napi_env env, napi_callback_info info) {
  Call call(env, info);
  std::string path = call.string(0);
  ListenOptions options = listen_options(call, 1);
  return with_loop(call, [&](Loop& l) { return l.listen_unix(path, options); });
}

// configureListener(id, maxConnections, maxPerPeer, queueLimit, queueTimeoutMs,
//   overflowReset, overflowBytes | undefined, idleMs, graceMs, idleResetsOnWrite,
//   highWater, lowWater, maxWrite, waitInBacklog)
napi_value configure_listener(napi_env env, napi_callback_info info) {
  Call call(env, info);
  AdmissionPolicy policy;
  policy.max_connections = call.u32(1);
  policy.max_per_peer = call.u32(2);
  policy.queue_limit = call.u32(3);
  policy.queue_timeout_ms = call.u32(4);
  policy.overflow = call.boolean(5) ? Overflow::kReset : Overflow::kClose;
  bool has_bytes = false;
  napi_is_buffer(env, call.argv[6], &has_bytes);
  if (has_bytes) {
    iovec bytes = call.bytes(call.argv[6]);
    policy.overflow_bytes.assign(static_cast<const char*>(bytes.iov_base), bytes.iov_len);
  }
  ConnDefaults defaults;
  defaults.idle_ms = call.u32(7);
  defaults.grace_ms = call.u32(8);
  defaults.idle_resets_on_write = call.boolean(9);
  defaults.high_water = call.u32(10);
  defaults.low_water = call.u32(11);
  defaults.max_write = call.u32(12);
  policy.wait_in_backlog = call.boolean(13);
  return with_loop(call,
                   [&](Loop& l) { return l.configure_listener(call.id(0), policy, defaults); });
}

// listenerCounts(id) -> [open, queued] or -errno
napi_value listener_counts(napi_env env, napi_callback_info info) {
  Call call(env, info);
  Loop* loop = call.core->loop();
  if (!loop) return call.outcome(-EBADF);
  uint32_t open = 0, queued = 0;
  int rc = loop->listener_counts(call.id(0), &open, &queued);
  if (rc < 0) return call.outcome(rc);
  napi_value result;
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, call.result(open));
  napi_set_element(env, result, 1, call.result(queued));
  return result;
}

// setIdleTimeout(id, ms, resetsOnWrite, graceMs)
napi_value set_idle_timeout(napi_env env, napi_callback_info info) {
  Call call(env, info);
  return with_loop(call, [&](Loop& l) {
    return l.set_idle_timeout(call.id(0), call.u32(1), call.boolean(2), call.u32(3));
  });
}

// setWriteLimits(id, high, low, max)
napi_value set_write_limits(napi_env env, napi_callback_info info) {
  Call call(env, info);
  return with_loop(call, [&](Loop& l) {
    return l.set_write_limits(call.id(0), call.u32(1), call.u32(2), call.u32(3));
  });
}

// stats() -> the counters of src/native.ts's NativeStats, or -EBADF once closed
napi_value stats(napi_env env, napi_callback_info info) {
  Call call(env, info);
  Loop* loop = call.core->loop();
  if (!loop) return call.outcome(-EBADF);
  const Stats& s = loop->stats();
  const std::pair<const char*, double> fields[] = {
      {"open", static_cast<double>(loop->open_connections())},
      {"queued", static_cast<double>(loop->queued_connections())},
      {"accepted", static_cast<double>(s.accepted)},
      {"rejected", static_cast<double>(s.rejected)},
      {"queueTimeouts", static_cast<double>(s.queue_timeouts)},
      {"abandoned", static_cast<double>(s.abandoned)},
      {"reaped", static_cast<double>(s.reaped)},
      {"idleTimeouts", static_cast<double>(s.idle_timeouts)},
      {"bytesIn", static_cast<double>(s.bytes_in)},
      {"bytesOut", static_cast<double>(s.bytes_out)},
      {"loopIterations", static_cast<double>(s.loop_iterations)},
      {"batches", static_cast<double>(s.batches)},
      {"records", static_cast<double>(s.records)},
      {"maxBatch", static_cast<double>(s.max_batch)},
      {"emfile", static_cast<double>(s.emfile)},
  };
  napi_value result;
  napi_create_object(env, &result);
  for (const auto& [name, value] : fields) {
    napi_set_named_property(env, result, name, call.result(value));
  }
  return result;
}

napi_value connect_tcp(napi_env env, napi_callback_info info) {
  Call call(env, info);
  std::string host = call.string(0);
  int port = call.integer(1);
  return with_loop(call, [&](Loop& l) { return l.connect_tcp(host, port); });
}

napi_value connect_unix(napi_env env, napi_callback_info info) {
  Call call(env, info);
  std::string path = call.string(0);
  return with_loop(call, [&](Loop& l) { return l.connect_unix(path); });
}

// write(id, bytes): the hot path.
napi_value write(napi_env env, napi_callback_info info) {
  Call call(env, info);
  iovec chunk = call.bytes(call.argv[1]);
  return with_loop(call, [&](Loop& l) { return l.write(call.id(0), &chunk, 1); });
}

// writev(id, [bytes, ...]); more chunks than one sendmsg takes go in order.
napi_value writev(napi_env env, napi_callback_info info) {
  Call call(env, info);
  uint32_t count = 0;
  napi_get_array_length(env, call.argv[1], &count);
  std::vector<iovec> chunks(count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    napi_get_element(env, call.argv[1], i, &element);
    chunks[i] = call.bytes(element);
  }
  return with_loop(call, [&](Loop& l) {
    int64_t result = 0;
    for (size_t at = 0; at < chunks.size() && result >= 0; at += kMaxSendChunks) {
      int n = static_cast<int>(std::min<size_t>(kMaxSendChunks, chunks.size() - at));
      result = l.write(call.id(0), &chunks[at], n);
    }
    return result;
  });
}

// end(id), close(id), abort(id), queuedBytes(id): the calls that take only an id.
template <auto method>
napi_value on_id(napi_env env, napi_callback_info info) {
  Call call(env, info);
  return with_loop(call, [&](Loop& l) { return (l.*method)(call.id(0)); });
}

// setReading(id, reading), setIdleNotify(id, notify), setNoDelay(id, enable):
// the calls that take an id and a flag.
template <auto method>
napi_value on_id_flag(napi_env env, napi_callback_info info) {
  Call call(env, info);
  return with_loop(call, [&](Loop& l) { return (l.*method)(call.id(0), call.boolean(1)); });
}

// setKeepAlive(id, enable, idleSeconds, intervalSeconds, count)
napi_value set_keep_alive(napi_env env, napi_callback_info info) {
  Call call(env, info);
  return with_loop(call, [&](Loop& l) {
    return l.set_keep_alive(call.id(0), call.boolean(1), call.integer(2), call.integer(3),
                            call.integer(4));
  });
}

// address(id, peer) -> { address, port, family } or -errno
napi_value address(napi_env env, napi_callback_info info) {
  Call call(env, info);
  Loop* loop = call.core->loop();
  if (!loop) return call.outcome(-EBADF);
  SocketAddress address;
  int rc = loop->address(call.id(0), call.boolean(1), &address);
  if (rc < 0) return call.outcome(rc);
  Napi::Object result = Napi::Object::New(env);
  result.Set("address", address.address);
  result.Set("port", address.port);
  result.Set("family", family_name(address.family));
  return result;
}

napi_value timer_start(napi_env env, napi_callback_info info) {
  Call call(env, info);
  auto ms = static_cast<uint64_t>(call.number(0));
  return with_loop(call, [&](Loop& l) { return l.timer_start(ms); });
}

napi_value timer_cancel(napi_env env, napi_callback_info info) {
  Call call(env, info);
  return with_loop(call, [&](Loop& l) { return l.timer_cancel(call.id(0)) ? 1 : 0; });
}

napi_value timer_reset(napi_env env, napi_callback_info info) {
  Call call(env, info);
  auto ms = static_cast<uint64_t>(call.number(1));
  return with_loop(call, [&](Loop& l) { return l.timer_reset(call.id(0), ms) ? 1 : 0; });
}

// timerKeepAlive(id, keepAlive) -> 1, or 0 once the timer is gone
napi_value timer_keep_alive(napi_env env, napi_callback_info info) {
  Call call(env, info);
  return with_loop(
      call, [&](Loop& l) { return l.timer_keep_alive(call.id(0), call.boolean(1)) ? 1 : 0; });
}

napi_value shutdown(napi_env env, napi_callback_info info) {
  Call call(env, info);
  call.core->shutdown();
  return nullptr;
}

// createReactor(dispatch, backend, allocateSlab) -> the object described in src/native.ts
Napi::Value create_reactor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  std::string error;
  int fallback = 0;
  std::unique_ptr<Poller> poller = make_poller(name, &error, &fallback);
  if (!poller) {
    Napi::Error e = Napi::Error::New(env, "backend unavailable: " + name);
    e.Set("code", Napi::String::New(env, error));
    throw e;
  }
  Napi::Object self = Napi::Object::New(env);
  self.Set("backend", Napi::String::New(env, poller->name()));
  self.Set("fallbackErrno", Napi::Number::New(env, fallback));
  Core* core = new Core(env, std::move(poller), info[0].As<Napi::Function>(),
                        info[2].As<Napi::Function>(), self);
  Napi::ArrayBuffer records = core->records();
  self.Set("records",
           Napi::Int32Array::New(env, records.ByteLength() / sizeof(int32_t), records, 0));
  const std::pair<const char*, napi_callback> methods[] = {
      {"listenTcp", listen_tcp},
      {"listenUnix", listen_unix},
      {"configureListener", configure_listener},
      {"listenerCounts", listener_counts},
      {"connectTcp", connect_tcp},
      {"connectUnix", connect_unix},
      {"write", write},
      {"writev", writev},
      {"end", on_id<&Loop::end>},
      {"close", on_id<&Loop::close>},
      {"abort", on_id<&Loop::abort>},
      {"setReading", on_id_flag<&Loop::set_reading>},
      {"setIdleTimeout", set_idle_timeout},
      {"setIdleNotify", on_id_flag<&Loop::set_idle_notify>},
      {"setWriteLimits", set_write_limits},
      {"stats", stats},
      {"setNoDelay", on_id_flag<&Loop::set_no_delay>},
      {"setKeepAlive", set_keep_alive},
      {"address", address},
      {"queuedBytes", on_id<&Loop::queued_bytes>},
      {"timerStart", timer_start},
      {"timerCancel", timer_cancel},
      {"timerReset", timer_reset},
      {"timerKeepAlive", timer_keep_alive},
      {"shutdown", shutdown},
  };
  for (const auto& [method, callback] : methods) {
    napi_value fn;
    NAPI_THROW_IF_FAILED(env,
                         napi_create_function(env, method, NAPI_AUTO_LENGTH, callback, core, &fn),
                         Napi::Value());
    // The Core outlives every function that can reach it.
    core->retain();
    napi_add_finalizer(
        env, fn, core, [](napi_env, void* data, void*) { static_cast<Core*>(data)->release(); },
        nullptr, nullptr);
    self.Set(method, fn);
  }
  return self;
}

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    if (int error = net_init()) {
      throw Napi::Error::New(
          env, std::string("socket layer unavailable: errno ") + std::to_string(error));
    }
    Napi::Array backends = Napi::Array::New(env);
    for (const std::string& name : available_backends()) backends[backends.Length()] = name;
    DefineAddon(exports, {InstanceMethod<&Addon::CreateReactor>("createReactor"),
                          InstanceValue("backends", backends)});
  }

 private:
  Napi::Value CreateReactor(const Napi::CallbackInfo& info) { return create_reactor(info); }
};

}  // namespace
}  // namespace reactor

using ReactorAddon = reactor::Addon;
NODE_API_ADDON(ReactorAddon)
