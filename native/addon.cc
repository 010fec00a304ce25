// The only file that speaks Node-API. createReactor() wraps one Loop and
// nests it in Node's libuv loop: a uv_poll on the backend's fd, a uv_timer
// armed to the earliest native deadline and a uv_prepare that applies interest
// changes before libuv blocks. Records reach JavaScript in one MakeCallback
// per batch. All state hangs off the returned object's functions or the
// environment's cleanup hook; nothing is static.
#include <node_api.h>
#include <uv.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
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
// Writes a batch may cork (one per record of a full batch); JavaScript sends
// them early when the array is full.
constexpr size_t kCorkCapacity = kRecordCapacity;
constexpr size_t kCorkedFields = 3;                 // id, offset in the batch's slab, length
constexpr double kMaxExactId = 9007199254740991.0;  // 2^53 - 1: ids are exact doubles

// What a reactor holds outside V8's heap, told to V8 so that forgotten
// reactors are collected before they exhaust memory or descriptors: the core
// and its tables, and what the backend holds in the kernel or its own thread
// (io_uring: 1,024 SQEs, 16,384 CQEs and the buffer ring's entries; poll and
// select: the readiness thread's stack, and its two pipes, up to 64 KiB of
// kernel buffer each — counted whole: V8 collects on memory, not descriptors,
// and these reactors hold four). Read slabs are Buffers, already known to V8.
int64_t native_cost(const std::string& backend) {
  int64_t cost = 32 * 1024;
  if (backend == "io_uring") cost += 1024 * 64 + 16384 * 16 + 512 * 16 + 16 * 1024;
  if (backend == "poll" || backend == "select") cost += 64 * 1024 + 2 * 64 * 1024;
  return cost;
}

// Plain Node-API throughout, every status checked: a call can fail at any
// moment while a worker terminates, and a C++ exception thrown then (as
// node-addon-api's would be) cannot reach JavaScript and aborts the process.

// The value of a reference, or null once it is gone (or the call failed).
napi_value value_of(napi_env env, napi_ref ref) {
  napi_value v = nullptr;
  if (!ref || napi_get_reference_value(env, ref, &v) != napi_ok) return nullptr;
  return v;
}

void drop(napi_env env, napi_ref* ref) {
  if (*ref) napi_delete_reference(env, *ref);
  *ref = nullptr;
}

napi_value undefined_of(napi_env env) {
  napi_value v = nullptr;
  napi_get_undefined(env, &v);
  return v;
}

bool set_property(napi_env env, napi_value object, const char* name, napi_value v) {
  return v && napi_set_named_property(env, object, name, v) == napi_ok;
}

napi_value string_value(napi_env env, const char* s) {
  napi_value v = nullptr;
  if (napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v) != napi_ok) return nullptr;
  return v;
}

napi_value number_value(napi_env env, double d) {
  napi_value v = nullptr;
  if (napi_create_double(env, d, &v) != napi_ok) return nullptr;
  return v;
}

// Throws an Error whose `code` is `code` (nothing if even that fails: the
// environment is going away and nobody would see it).
void throw_error(napi_env env, const std::string& code, const std::string& message) {
  napi_value c = string_value(env, code.c_str());
  napi_value m = string_value(env, message.c_str());
  napi_value error = nullptr;
  if (c && m && napi_create_error(env, c, m, &error) == napi_ok) napi_throw(env, error);
}

// Owns the loop and the libuv handles. Freed when its JavaScript functions
// are collected and every libuv handle has finished closing, whichever is last.
class Core final : public Sink {
 public:
  explicit Core(napi_env env) : env_(env) {}

  // Takes the JavaScript values, makes the records buffer, the loop and the
  // libuv handles. On failure returns false with *uv_error set if libuv
  // refused; discard() then undoes whatever was done.
  bool init(std::unique_ptr<Poller> poller, napi_value dispatch, napi_value allocate_slab,
            napi_value resource, napi_value* records_view, napi_value* corked_view, int* uv_error) {
    napi_value name = string_value(env_, "NativeReactor");
    // dispatch (which holds the JavaScript Reactor) and the reactor object
    // are held weakly until something is live (sync()); the object holds
    // dispatch meanwhile, so it lives exactly as long as the Reactor.
    napi_property_descriptor holds_dispatch = {"dispatch", nullptr,  nullptr,      nullptr,
                                               nullptr,    dispatch, napi_default, nullptr};
    if (!name || napi_define_properties(env_, resource, 1, &holds_dispatch) != napi_ok ||
        napi_create_reference(env_, dispatch, 0, &dispatch_) != napi_ok ||
        napi_create_reference(env_, allocate_slab, 1, &allocate_slab_) != napi_ok ||
        napi_create_reference(env_, resource, 0, &resource_) != napi_ok ||
        napi_async_init(env_, resource, name, &async_context_) != napi_ok) {
      return false;
    }
    void* data = nullptr;
    napi_value records = nullptr;
    if (napi_create_arraybuffer(env_, kRecordCapacity * sizeof(Record), &data, &records) !=
            napi_ok ||
        napi_create_reference(env_, records, 1, &records_) != napi_ok ||
        napi_create_typedarray(env_, napi_int32_array, kRecordCapacity * sizeof(Record) / 4,
                               records, 0, records_view) != napi_ok) {
      return false;
    }
    void* corked_data = nullptr;
    napi_value corked = nullptr;
    size_t corked_words = kCorkCapacity * kCorkedFields;
    if (napi_create_arraybuffer(env_, corked_words * sizeof(double), &corked_data, &corked) !=
            napi_ok ||
        napi_create_reference(env_, corked, 1, &corked_) != napi_ok ||
        napi_create_typedarray(env_, napi_float64_array, corked_words, corked, 0, corked_view) !=
            napi_ok) {
      return false;
    }
    corked_entries_ = static_cast<double*>(corked_data);
    int64_t cost = native_cost(poller->name());
    loop_ = std::make_unique<Loop>(std::move(poller), this, static_cast<Record*>(data),
                                   kRecordCapacity);
    int64_t ignored = 0;
    if (napi_adjust_external_memory(env_, cost, &ignored) == napi_ok) accounted_ = cost;
    uv_loop_t* uv = nullptr;
    if (napi_get_uv_event_loop(env_, &uv) != napi_ok) return false;
#ifdef _WIN32
    int rc = uv_poll_init_socket(uv, &poll_, native_socket(loop_->pollable_fd()));
#else
    int rc = uv_poll_init(uv, &poll_, loop_->pollable_fd());
#endif
    if (rc != 0) {
      *uv_error = rc;
      return false;
    }
    uv_timer_init(uv, &timer_);
    uv_prepare_init(uv, &prepare_);
    open_handles_ = 3;
    for (uv_handle_t* h : handles()) {
      h->data = this;
      uv_unref(h);
    }
    uv_poll_start(&poll_, UV_READABLE, on_poll);
    if (napi_add_env_cleanup_hook(env_, on_env_cleanup, this) != napi_ok) return false;
    hooked_ = true;
    return true;
  }

  // Undoes a failed init(); nothing JavaScript holds can reach this Core.
  void discard() {
    shutdown();
    free_if_done();
  }

  Loop* loop() { return closed_ ? nullptr : loop_.get(); }

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
    hold(live || loop_->timers_keeping_alive() > 0);
    uint64_t deadline = loop_->next_timer_deadline();
    if (deadline != armed_deadline_) {
      armed_deadline_ = deadline;
      if (deadline == Loop::kNever) {
        uv_timer_stop(&timer_);
      } else {
        uint64_t now = Loop::now_ms();
        uint64_t delay = deadline > now ? deadline - now : 0;
        // libuv runs a timer armed with 0 from inside its timer phase again in
        // the same pass: a callLater(0) that reschedules itself would never let
        // the loop leave it. From there wait 1 ms, as Node's setTimeout(0) does.
        if (delay == 0 && in_timer_) delay = 1;
        uv_timer_start(&timer_, on_timer, delay, 0);
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

  // After a call from JavaScript: one made while a batch is dispatched (a
  // protocol's write, the hot path) is brought in step by run() on its way out.
  void after_call() {
    if (running_ == 0) sync();
  }

  // Strong references to the JavaScript Reactor while something of it is
  // live, as libuv handles are ref'd: a listener keeps serving though nobody
  // holds the Reactor. Weak otherwise: they would be a root of the cycle
  // Reactor -> reactor object -> functions (whose finalizers free this) ->
  // dispatch -> Reactor, and a dropped idle reactor would never be collected.
  void hold(bool strong) {
    if (strong == strong_ || closed_) return;
    uint32_t count = 0;
    for (napi_ref ref : {dispatch_, resource_}) {
      if (strong) {
        napi_reference_ref(env_, ref, &count);
      } else {
        napi_reference_unref(env_, ref, &count);
      }
    }
    strong_ = strong;
  }

  // Closes every socket and handle; no callback reaches JavaScript afterwards.
  void shutdown() {
    if (closed_) return;
    closed_ = true;
    if (hooked_) napi_remove_env_cleanup_hook(env_, on_env_cleanup, this);
    hooked_ = false;
    // Stop libuv watching the backend fd before that fd is closed.
    if (open_handles_ > 0) {
      for (uv_handle_t* h : handles()) uv_close(h, on_handle_closed);
    }
    if (loop_) loop_->close_all();
    release_loop();
    if (accounted_) {
      int64_t ignored = 0;
      napi_adjust_external_memory(env_, -accounted_, &ignored);
      accounted_ = 0;
    }
    // Release every Node-API resource now, while the environment is alive:
    // the handles may finish closing after it is gone.
    if (async_context_) napi_async_destroy(env_, async_context_);
    async_context_ = nullptr;
    drop(env_, &dispatch_);
    drop(env_, &resource_);
    drop(env_, &records_);
    drop(env_, &corked_);
    corked_entries_ = nullptr;
    drop(env_, &slab_);
    drop(env_, &allocate_slab_);
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
      if ((out[i].kind == kClosed || out[i].kind == kDatagramError) && out[i].a > 0) {
        out[i].a = js_errno(out[i].a);
      }
    }
#else
    (void)records;
#endif
    batch_slab_ = current_slab_;  // what the records' offsets, and corked writes, point into
    napi_value dispatch = value_of(env_, dispatch_);
    napi_value resource = value_of(env_, resource_);
    napi_value slab = slab_changed_ ? value_of(env_, slab_) : undefined_of(env_);
    napi_value args[] = {number_value(env_, static_cast<double>(count)), slab};
    if (!dispatch || !resource || !args[0] || !args[1]) return false;
    slab_changed_ = false;
    napi_value result;
    if (napi_make_callback(env_, async_context_, resource, dispatch, 2, args, &result) == napi_ok) {
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
    napi_value size = number_value(env_, static_cast<double>(kSlabSize));
    napi_value allocate = value_of(env_, allocate_slab_);
    napi_value recv = undefined_of(env_);
    napi_value buffer = nullptr;
    void* data = nullptr;
    size_t length = 0;
    napi_ref ref = nullptr;
    if (!size || !allocate || !recv ||
        napi_call_function(env_, recv, allocate, 1, &size, &buffer) != napi_ok ||
        napi_get_buffer_info(env_, buffer, &data, &length) != napi_ok ||
        napi_create_reference(env_, buffer, 1, &ref) != napi_ok) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env_, &ignored);
      return {};  // out of memory: reading waits for the next wake-up
    }
    drop(env_, &slab_);
    slab_ = ref;
    slab_changed_ = true;
    current_slab_ = {static_cast<uint8_t*>(data), length};
    return current_slab_;
  }

  // Sends the writes JavaScript corked during a batch (see src/write-cork.ts),
  // in order: each entry is (id, offset, length) of bytes in the batch's slab.
  // Each entry's length becomes the write's result (bytes left queued, or
  // -errno); returns how many results are not 0, so that JavaScript reads
  // them only then.
  int64_t write_corked(Loop& loop, double count) {
    if (!corked_entries_ || !(count >= 0 && count <= static_cast<double>(kCorkCapacity)))
      return -EINVAL;
    int64_t unusual = 0;
    for (size_t i = 0; i < static_cast<size_t>(count); i++) {
      double* entry = corked_entries_ + i * kCorkedFields;
      double id = entry[0], offset = entry[1], length = entry[2];
      int64_t result = -EINVAL;
      // Checked as doubles: NaN or out-of-range values fail every comparison.
      if (id >= 0 && id <= kMaxExactId && offset >= 0 && length >= 0 &&
          offset + length <= static_cast<double>(batch_slab_.size)) {
        iovec chunk{batch_slab_.data + static_cast<size_t>(offset), static_cast<size_t>(length)};
        result = loop.write(static_cast<uint64_t>(id), &chunk, 1);
      }
      entry[2] = static_cast<double>(result < 0 ? -js_errno(static_cast<int>(-result)) : result);
      if (result != 0) unusual++;
    }
    return unusual;
  }

 private:
  static uv_handle_t* handle(void* h) { return static_cast<uv_handle_t*>(h); }
  std::array<uv_handle_t*, 3> handles() {
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
    if (closed_) return;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env_, &scope) != napi_ok) return;
    running_++;
    try {
      step(*loop_);
    } catch (...) {
      // Out of memory inside the core: this wake-up is lost, the process is not.
    }
    running_--;
    if (closed_) {
      release_loop();
    } else {
      sync();
    }
    napi_close_handle_scope(env_, scope);
  }

  static void on_poll(uv_poll_t* h, int, int) {
    from(h)->run([](Loop& loop) { loop.poll(); });
  }

  static void on_timer(uv_timer_t* h) {
    Core* core = from(h);
    core->armed_deadline_ = Loop::kNever;  // one-shot: it is no longer armed
    core->in_timer_ = true;
    core->run([](Loop& loop) { loop.run_timers(); });
    core->in_timer_ = false;
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

  napi_env env_;
  napi_async_context async_context_ = nullptr;
  napi_ref dispatch_ = nullptr;
  napi_ref resource_ = nullptr;
  napi_ref records_ = nullptr;
  napi_ref allocate_slab_ = nullptr;
  napi_ref slab_ = nullptr;    // the current slab, a Buffer
  Slab current_slab_;          // its memory
  Slab batch_slab_;            // the slab of the batch last delivered
  napi_ref corked_ = nullptr;  // the Float64Array's ArrayBuffer of corked writes
  double* corked_entries_ = nullptr;
  bool slab_changed_ = false;
  std::unique_ptr<Loop> loop_;
  uv_poll_t poll_{};
  uv_timer_t timer_{};
  uv_prepare_t prepare_{};
  uint64_t armed_deadline_ = Loop::kNever;
  bool poll_ref_ = false;
  bool timer_ref_ = false;
  bool in_timer_ = false;  // on_timer is on the stack
  bool strong_ = false;    // dispatch_ and resource_ hold the Reactor (hold())
  int64_t accounted_ = 0;  // reported with napi_adjust_external_memory
  bool hooked_ = false;    // the env cleanup hook is registered
  int running_ = 0;        // depth of loop calls on the stack
  bool closed_ = false;
  int js_refs_ = 0;
  int open_handles_ = 0;  // 3 once init() made them

 public:
  // A response's header lines and string body, copied from JavaScript (kept
  // so that each response does not allocate them).
  std::string http_headers;
  std::string http_body;
};

// ---- the JavaScript-facing functions ----------------------------------------
//
// Each reactor object carries its own functions whose Node-API `data` is the
// Core, so a call costs no unwrap. Arguments are validated in src/ before
// they get here (an object is still read field by field and checked: Fields);
// results are numbers (negative errno on failure) so errors are built in one
// place on the JavaScript side.

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

// Reads the properties of an object src/ builds for a call. src/ validates
// what users pass, so a property missing or of the wrong type here is our own
// bug: the first one read throws a TypeError with code ERR_INVALID_ARG_TYPE
// (a number that is no u32: a RangeError, ERR_OUT_OF_RANGE) naming it, ok()
// turns false and later reads return zeros.
class Fields {
 public:
  Fields(napi_env env, napi_value object, const char* method, const char* name)
      : env_(env), object_(object), method_(method), name_(name) {
    if (type_of(object) != napi_object) fail_type(nullptr, "an object", object);
  }

  bool ok() const { return ok_; }

  // JavaScript passes 2^32 - 1 for "no limit".
  uint32_t u32(const char* key) {
    double v = 0;
    napi_value value = get(key, napi_number, "a number");
    if (!value || napi_get_value_double(env_, value, &v) != napi_ok) return 0;
    if (v >= 0 && v <= UINT32_MAX && static_cast<uint32_t>(v) == v) return static_cast<uint32_t>(v);
    fail(napi_throw_range_error, "ERR_OUT_OF_RANGE", key, "an integer from 0 to 4294967295");
    return 0;
  }

  bool boolean(const char* key) {
    bool v = false;
    napi_value value = get(key, napi_boolean, "a boolean");
    if (value) napi_get_value_bool(env_, value, &v);
    return v;
  }

  // A Uint8Array's bytes (a Buffer is one).
  std::string bytes(const char* key) {
    napi_value value = get(key, napi_object, "a Uint8Array");
    if (!value) return {};
    bool typed = false;
    napi_typedarray_type type = napi_int8_array;
    size_t length = 0;
    void* data = nullptr;
    if (napi_is_typedarray(env_, value, &typed) != napi_ok || !typed ||
        napi_get_typedarray_info(env_, value, &type, &length, &data, nullptr, nullptr) != napi_ok ||
        type != napi_uint8_array) {
      fail_type(key, "a Uint8Array", value);
      return {};
    }
    return length ? std::string(static_cast<const char*>(data), length) : std::string();
  }

 private:
  // The property if it has the type wanted; otherwise null, having thrown
  // (or with a getter's exception pending, or the environment going away).
  napi_value get(const char* key, napi_valuetype type, const char* expected) {
    napi_value value = nullptr;
    if (!ok_) return nullptr;
    if (napi_get_named_property(env_, object_, key, &value) != napi_ok) {
      ok_ = false;
      return nullptr;
    }
    if (type_of(value) == type) return value;
    fail_type(key, expected, value);
    return nullptr;
  }

  napi_valuetype type_of(napi_value value) const {
    napi_valuetype type = napi_undefined;
    napi_typeof(env_, value, &type);
    return type;
  }

  void fail_type(const char* key, const char* expected, napi_value value) {
    // In napi_valuetype's order.
    static constexpr const char* kNames[] = {"undefined", "null",   "boolean", "number",
                                             "string",    "symbol", "object",  "function",
                                             "external",  "bigint"};
    napi_valuetype type = type_of(value);
    std::string got = type < std::size(kNames) ? kNames[type] : "unknown";
    fail(napi_throw_type_error, "ERR_INVALID_ARG_TYPE", key,
         std::string(expected) + ", got " + got);
  }

  void fail(napi_status (*throw_as)(napi_env, const char*, const char*), const char* code,
            const char* key, const std::string& requirement) {
    ok_ = false;
    std::string where = key ? std::string(name_) + "." + key : std::string(name_);
    std::string message = std::string(method_) + ": \"" + where + "\" must be " + requirement;
    throw_as(env_, code, message.c_str());
  }

  napi_env env_;
  napi_value object_;
  const char* method_;
  const char* name_;
  bool ok_ = true;
};

// Runs op on the live loop, then brings libuv in step; -EBADF once closed.
template <typename Op>
napi_value with_loop(const Call& call, Op op) {
  Loop* loop = call.core->loop();
  if (!loop) return call.outcome(-EBADF);
  double value = static_cast<double>(op(*loop));
  call.core->after_call();
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

// configureListener(id, config): config is src/native.ts's NativeListenerConfig.
// The listener changes only if every field is there with its type.
napi_value configure_listener(napi_env env, napi_callback_info info) {
  Call call(env, info);
  Fields config(env, call.argv[1], "configureListener", "config");
  AdmissionPolicy policy;
  policy.max_connections = config.u32("maxConnections");
  policy.max_per_peer = config.u32("maxConnectionsPerPeer");
  policy.queue_limit = config.u32("queueLimit");
  policy.queue_timeout_ms = config.u32("queueTimeoutMs");
  policy.wait_in_backlog = config.boolean("waitInBacklog");
  policy.overflow = config.boolean("overflowReset") ? Overflow::kReset : Overflow::kClose;
  policy.overflow_bytes = config.bytes("overflowBytes");
  policy.proxy_protocol = config.boolean("proxyProtocol");
  policy.proxy_header_timeout_ms = config.u32("proxyHeaderTimeoutMs");
  ConnDefaults defaults;
  defaults.idle_ms = config.u32("idleTimeoutMs");
  defaults.limits.grace_ms = config.u32("idleGraceMs");
  defaults.idle_resets_on_write = config.boolean("idleResetOnWrite");
  defaults.limits.high_water = config.u32("highWaterMark");
  defaults.limits.low_water = config.u32("lowWaterMark");
  defaults.limits.max_write = config.u32("maxWriteBuffer");
  if (!config.ok()) return nullptr;
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

// listenerConnections(id) -> the listener's connections still open, closed or not
napi_value listener_connections(napi_env env, napi_callback_info info) {
  Call call(env, info);
  Loop* loop = call.core->loop();
  return call.result(loop ? static_cast<double>(loop->connections_of(call.id(0))) : 0);
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
      {"httpRequests", static_cast<double>(s.http_requests)},
      {"httpRefused", static_cast<double>(s.http_refused)},
      {"proxyHeaders", static_cast<double>(s.proxy_headers)},
      {"proxyMissing", static_cast<double>(s.proxy_missing)},
      {"proxyMalformed", static_cast<double>(s.proxy_malformed)},
      {"proxyTooLarge", static_cast<double>(s.proxy_too_large)},
      {"proxyTimeouts", static_cast<double>(s.proxy_timeouts)},
      {"proxyAbandoned", static_cast<double>(s.proxy_abandoned)},
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

// adoptListener(fd, requireTcp), adoptConnection(fd): the loop owns fd once
// an id comes back; on -errno the caller still does.
napi_value adopt_listener(napi_env env, napi_callback_info info) {
  Call call(env, info);
  int fd = call.integer(0);
  bool require_tcp = call.boolean(1);
  return with_loop(call, [&](Loop& l) { return l.adopt_listener(fd, require_tcp); });
}

napi_value adopt_connection(napi_env env, napi_callback_info info) {
  Call call(env, info);
  int fd = call.integer(0);
  return with_loop(call, [&](Loop& l) { return l.adopt_connection(fd); });
}

// watch(fd, interest) -> id or -errno; watchUpdate(id, interest). interest:
// 1 readable, 2 writable (poller.h's Interest). fd stays the caller's.
napi_value watch(napi_env env, napi_callback_info info) {
  Call call(env, info);
  int fd = call.integer(0);
  uint32_t interest = call.u32(1);
  return with_loop(call, [&](Loop& l) { return l.watch(fd, interest); });
}

napi_value watch_update(napi_env env, napi_callback_info info) {
  Call call(env, info);
  return with_loop(call, [&](Loop& l) { return l.watch_update(call.id(0), call.u32(1)); });
}

// write(id, bytes): the hot path.
napi_value write(napi_env env, napi_callback_info info) {
  Call call(env, info);
  iovec chunk = call.bytes(call.argv[1]);
  return with_loop(call, [&](Loop& l) { return l.write(call.id(0), &chunk, 1); });
}

// writeCorked(count): the writes corked in the shared array; see Core::write_corked.
napi_value write_corked(napi_env env, napi_callback_info info) {
  Call call(env, info);
  double count = call.number(0);
  return with_loop(call, [&](Loop& l) { return call.core->write_corked(l, count); });
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

// configureHttp(id, config): config is src/native.ts's NativeHttpConfig.
napi_value configure_http(napi_env env, napi_callback_info info) {
  Call call(env, info);
  Fields config(env, call.argv[1], "configureHttp", "config");
  http::ServerConfig server;
  server.limits.max_head_bytes = config.u32("maxHeaderBytes");
  uint32_t max_body = config.u32("maxBodyBytes");
  server.limits.max_body_bytes = max_body == UINT32_MAX ? UINT64_MAX : max_body;
  server.header_timeout_ms = config.u32("headersTimeoutMs");
  server.request_timeout_ms = config.u32("requestTimeoutMs");
  server.keep_alive_ms = config.u32("keepAliveTimeoutMs");
  server.max_pending_bytes = config.u32("maxPendingBytes");
  if (!config.ok()) return nullptr;
  return with_loop(call, [&](Loop& l) { return l.configure_http(call.id(0), server); });
}

// A string (latin1 for header lines, UTF-8 for a body) into out: one call
// when it fits the room out already has (the common case: out is reused).
// UTF-8 is cut before a character that does not fit whole, so up to 3 bytes
// of room may stay unused: only a copy that left more than that is complete.
bool copy_string(napi_env env, napi_value value, bool latin1, std::string* out) {
  auto get = latin1 ? napi_get_value_string_latin1 : napi_get_value_string_utf8;
  if (out->size() < 256) out->resize(256);
  size_t length = 0;
  if (get(env, value, out->data(), out->size() + 1, &length) != napi_ok) return false;
  if (length + 3 < out->size()) {
    out->resize(length);
    return true;
  }
  if (get(env, value, nullptr, 0, &length) != napi_ok) return false;
  out->resize(length);
  return get(env, value, out->data(), length + 1, &length) == napi_ok;
}

// A response body: a string, a Uint8Array or undefined.
iovec body_of(const Call& call, napi_value value, std::string* text) {
  napi_valuetype type = napi_undefined;
  napi_typeof(call.env, value, &type);
  if (type == napi_string) {
    if (!copy_string(call.env, value, false, text)) text->clear();
    return {text->data(), text->size()};
  }
  if (type == napi_undefined) return {nullptr, 0};
  return call.bytes(value);
}

enum ResponseFlags : uint32_t { kUserLength = 1, kUserClose = 2 };

// httpRespond(id, status, body, end, flags, headerLines, reason): the head
// and maybe the body; the last three only when there are any (a bare
// res.end(body) passes four arguments). httpSend(id, body, end): more of the
// body.
napi_value http_respond(napi_env env, napi_callback_info info) {
  Call call(env, info);
  Core* core = call.core;
  http::ResponseHead head;
  head.status = call.integer(1);
  iovec body = body_of(call, call.argv[2], &core->http_body);
  bool end = call.boolean(3);
  uint32_t flags = call.argc > 4 ? call.u32(4) : 0;
  head.has_length = flags & kUserLength;
  head.close = flags & kUserClose;
  if (call.argc > 5) {
    if (!copy_string(env, call.argv[5], true, &core->http_headers)) core->http_headers.clear();
    head.headers = core->http_headers;
  }
  std::string reason;
  if (call.argc > 6) {
    reason = call.string(6);
    head.reason = reason;
  }
  return with_loop(call, [&](Loop& l) { return l.http_respond(call.id(0), &head, &body, 1, end); });
}

napi_value http_send(napi_env env, napi_callback_info info) {
  Call call(env, info);
  iovec body = body_of(call, call.argv[1], &call.core->http_body);
  bool end = call.boolean(2);
  return with_loop(call,
                   [&](Loop& l) { return l.http_respond(call.id(0), nullptr, &body, 1, end); });
}

// end(id), close(id), abort(id), queuedBytes(id): the calls that take only an id.
template <auto method>
napi_value on_id(napi_env env, napi_callback_info info) {
  Call call(env, info);
  return with_loop(call, [&](Loop& l) { return (l.*method)(call.id(0)); });
}

// setReading(id, reading), setIdleNotify(id, notify), setNoDelay(id, enable),
// watchKeepAlive(id, keepAlive): the calls that take an id and a flag.
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

// { address, port, family }, or -errno when rc is one (undefined if the
// object cannot be made: the environment is going away)
napi_value address_object(napi_env env, Call& call, int rc, const SocketAddress& address) {
  if (rc < 0) return call.outcome(rc);
  napi_value result = nullptr;
  if (napi_create_object(env, &result) != napi_ok ||
      !set_property(env, result, "address", string_value(env, address.address.c_str())) ||
      !set_property(env, result, "port", number_value(env, address.port)) ||
      !set_property(env, result, "family", string_value(env, family_name(address.family)))) {
    return nullptr;
  }
  return result;
}

// address(id, peer) -> address_object(): the peer is the client a PROXY
// protocol header named, if one did
napi_value address(napi_env env, napi_callback_info info) {
  Call call(env, info);
  Loop* loop = call.core->loop();
  if (!loop) return call.outcome(-EBADF);
  SocketAddress address;
  int rc = loop->address(call.id(0), call.boolean(1), &address);
  return address_object(env, call, rc, address);
}

// proxyAddress(id) -> address_object(): the socket's peer (the proxy) of a
// connection a PROXY protocol listener accepted; -ENOENT for others
napi_value proxy_address(napi_env env, napi_callback_info info) {
  Call call(env, info);
  Loop* loop = call.core->loop();
  if (!loop) return call.outcome(-EBADF);
  SocketAddress address;
  int rc = loop->proxy_address(call.id(0), &address);
  return address_object(env, call, rc, address);
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

// ---- UDP sockets (udp.h) ----

// The string at argv[i], or "" when it is undefined.
std::string optional_string(const Call& call, size_t i) {
  napi_valuetype type = napi_undefined;
  napi_typeof(call.env, call.argv[i], &type);
  return type == napi_string ? call.string(i) : std::string();
}

// udpOpen(host, port, reusePort, reuseAddress, ipv6Only, receiveBufferSize, sendBufferSize)
napi_value udp_open(napi_env env, napi_callback_info info) {
  Call call(env, info);
  std::string host = call.string(0);
  DatagramOptions options;
  options.reuse_port = call.boolean(2);
  options.reuse_address = call.boolean(3);
  options.ipv6_only = call.boolean(4);
  options.receive_buffer = call.integer(5);
  options.send_buffer = call.integer(6);
  return with_loop(call, [&](Loop& l) { return l.udp().open(host, call.integer(1), options); });
}

// udpSend(id, bytes, port, host | undefined, batch) -> a UdpSendResult or -errno: the hot path.
napi_value udp_send(napi_env env, napi_callback_info info) {
  Call call(env, info);
  iovec bytes = call.bytes(call.argv[1]);
  std::string host = optional_string(call, 3);
  return with_loop(call, [&](Loop& l) {
    return l.udp().send(call.id(0), bytes.iov_base, bytes.iov_len, host, call.integer(2),
                        call.boolean(4));
  });
}

// udpConnect(id, host, port)
napi_value udp_connect(napi_env env, napi_callback_info info) {
  Call call(env, info);
  std::string host = call.string(1);
  return with_loop(call,
                   [&](Loop& l) { return l.udp().connect(call.id(0), host, call.integer(2)); });
}

// udpDisconnect(id), udpClose(id)
template <int (UdpSockets::*method)(uint64_t)>
napi_value udp_on_id(napi_env env, napi_callback_info info) {
  Call call(env, info);
  return with_loop(call, [&](Loop& l) { return (l.udp().*method)(call.id(0)); });
}

// udpSetReading(id, reading)
napi_value udp_set_reading(napi_env env, napi_callback_info info) {
  Call call(env, info);
  return with_loop(call, [&](Loop& l) { return l.udp().set_reading(call.id(0), call.boolean(1)); });
}

// udpSetOption(id, option, value): option is UdpOption's order (src/native.ts UdpOption).
napi_value udp_set_option(napi_env env, napi_callback_info info) {
  Call call(env, info);
  int option = call.integer(1);
  if (option < 0 || option > static_cast<int>(UdpOption::kMulticastLoopback)) {
    return call.outcome(-EINVAL);
  }
  return with_loop(call, [&](Loop& l) {
    return l.udp().set_option(call.id(0), static_cast<UdpOption>(option), call.integer(2));
  });
}

// udpSetMulticastInterface(id, interfaceAddress)
napi_value udp_set_multicast_interface(napi_env env, napi_callback_info info) {
  Call call(env, info);
  std::string interface_address = call.string(1);
  return with_loop(call, [&](Loop& l) {
    return l.udp().set_multicast_interface(call.id(0), interface_address);
  });
}

// udpMembership(id, source | undefined, group, interfaceAddress | undefined, join)
napi_value udp_membership(napi_env env, napi_callback_info info) {
  Call call(env, info);
  std::string source = optional_string(call, 1);
  std::string group = call.string(2);
  std::string interface_address = optional_string(call, 3);
  bool join = call.boolean(4);
  return with_loop(call, [&](Loop& l) {
    return source.empty()
               ? l.udp().set_membership(call.id(0), group, interface_address, join)
               : l.udp().set_source_membership(call.id(0), source, group, interface_address, join);
  });
}

// udpStats(id) -> the counters of src/udp.ts's UDPSocketStats, or -errno
napi_value udp_stats(napi_env env, napi_callback_info info) {
  Call call(env, info);
  Loop* loop = call.core->loop();
  if (!loop) return call.outcome(-EBADF);
  UdpCounters counters;
  int rc = loop->udp().counters(call.id(0), &counters);
  if (rc < 0) return call.outcome(rc);
  const std::pair<const char*, uint64_t> fields[] = {
      {"datagramsIn", counters.received}, {"bytesIn", counters.received_bytes},
      {"datagramsOut", counters.sent},    {"bytesOut", counters.sent_bytes},
      {"dropped", counters.dropped},      {"errors", counters.errors},
  };
  napi_value result;
  if (napi_create_object(env, &result) != napi_ok) return nullptr;
  for (const auto& [name, value] : fields) {
    napi_set_named_property(env, result, name, call.result(static_cast<double>(value)));
  }
  return result;
}

// udpFormatAddress(slab, offset) -> the numeric host of the PackedAddress at
// offset (an IPv6 zone by its interface's name), or -errno. JavaScript caches
// it per sender and formats IPv4 itself.
napi_value udp_format_address(napi_env env, napi_callback_info info) {
  Call call(env, info);
  iovec slab = call.bytes(call.argv[0]);
  double offset = call.number(1);
  if (offset < 0 || offset + sizeof(PackedAddress) > static_cast<double>(slab.iov_len)) {
    return call.outcome(-EINVAL);
  }
  PackedAddress packed;
  std::memcpy(&packed, static_cast<const uint8_t*>(slab.iov_base) + static_cast<size_t>(offset),
              sizeof packed);
  SocketAddress address;
  int rc = format_address(packed, &address);
  if (rc < 0) return call.outcome(rc);
  return string_value(env, address.address.c_str());
}

// ---- module functions: sockets made without a reactor ------------------------

// listenSocket(host, port, backlog, reusePort, ipv6Only) -> a listening TCP
// socket's fd, or -errno. No loop takes it: a process binds it to hand it to
// others (runWorkers' primary, to its workers), who adopt it.
napi_value listen_socket(napi_env env, napi_callback_info info) {
  Call call(env, info);
  return call.outcome(
      reactor::listen_tcp(call.string(0), call.integer(1), listen_options(call, 2)));
}

// socketAddress(fd) -> { address, port, family } of a socket's local end, or -errno.
napi_value socket_address_of(napi_env env, napi_callback_info info) {
  Call call(env, info);
  SocketAddress address;
  int rc = socket_address(call.integer(0), false, &address);
  return address_object(env, call, rc, address);
}

// Every function handed to JavaScript: a C++ exception (only bad_alloc can
// be thrown here) must not unwind into Node.
template <napi_callback callback>
napi_value guarded(napi_env env, napi_callback_info info) {
  try {
    return callback(env, info);
  } catch (...) {
    return number_value(env, -js_errno(ENOMEM));
  }
}

constexpr std::pair<const char*, napi_callback> kModuleFunctions[] = {
    {"listenSocket", guarded<listen_socket>},
    {"socketAddress", guarded<socket_address_of>},
};

constexpr std::pair<const char*, napi_callback> kMethods[] = {
    {"listenTcp", guarded<listen_tcp>},
    {"listenUnix", guarded<listen_unix>},
    {"configureListener", guarded<configure_listener>},
    {"listenerCounts", guarded<listener_counts>},
    {"listenerConnections", guarded<listener_connections>},
    {"stopAccepting", guarded<on_id<&Loop::stop_accepting>>},
    {"connectTcp", guarded<connect_tcp>},
    {"connectUnix", guarded<connect_unix>},
    {"adoptListener", guarded<adopt_listener>},
    {"adoptConnection", guarded<adopt_connection>},
    {"watch", guarded<watch>},
    {"watchUpdate", guarded<watch_update>},
    {"watchKeepAlive", guarded<on_id_flag<&Loop::watch_keep_alive>>},
    {"write", guarded<write>},
    {"writev", guarded<writev>},
    {"writeCorked", guarded<write_corked>},
    {"end", guarded<on_id<&Loop::end>>},
    {"close", guarded<on_id<&Loop::close>>},
    {"abort", guarded<on_id<&Loop::abort>>},
    {"setReading", guarded<on_id_flag<&Loop::set_reading>>},
    {"setIdleTimeout", guarded<set_idle_timeout>},
    {"setIdleNotify", guarded<on_id_flag<&Loop::set_idle_notify>>},
    {"setWriteLimits", guarded<set_write_limits>},
    {"stats", guarded<stats>},
    {"setNoDelay", guarded<on_id_flag<&Loop::set_no_delay>>},
    {"setKeepAlive", guarded<set_keep_alive>},
    {"address", guarded<address>},
    {"proxyAddress", guarded<proxy_address>},
    {"queuedBytes", guarded<on_id<&Loop::queued_bytes>>},
    {"timerStart", guarded<timer_start>},
    {"timerCancel", guarded<timer_cancel>},
    {"timerReset", guarded<timer_reset>},
    {"timerKeepAlive", guarded<timer_keep_alive>},
    {"shutdown", guarded<shutdown>},
    {"udpOpen", guarded<udp_open>},
    {"udpSend", guarded<udp_send>},
    {"udpConnect", guarded<udp_connect>},
    {"udpDisconnect", guarded<udp_on_id<&UdpSockets::disconnect>>},
    {"udpSetReading", guarded<udp_set_reading>},
    {"udpSetOption", guarded<udp_set_option>},
    {"udpSetMulticastInterface", guarded<udp_set_multicast_interface>},
    {"udpMembership", guarded<udp_membership>},
    {"udpStats", guarded<udp_stats>},
    {"udpClose", guarded<udp_on_id<&UdpSockets::close>>},
    {"udpFormatAddress", guarded<udp_format_address>},
    {"configureHttp", guarded<configure_http>},
    {"httpRespond", guarded<http_respond>},
    {"httpSend", guarded<http_send>},
    {"httpBodyReading", guarded<on_id_flag<&Loop::http_set_body_reading>>},
};

void release_core(napi_env, void* data, void*) { static_cast<Core*>(data)->release(); }

// Gives the reactor object its functions, each holding the Core. False if
// one could not be made (the environment is going away).
bool add_methods(napi_env env, napi_value self, Core* core) {
  for (const auto& [method, callback] : kMethods) {
    napi_value fn = nullptr;
    if (napi_create_function(env, method, NAPI_AUTO_LENGTH, callback, core, &fn) != napi_ok ||
        napi_add_finalizer(env, fn, core, release_core, nullptr, nullptr) != napi_ok) {
      return false;
    }
    // The Core outlives every function that can reach it.
    core->retain();
    if (!set_property(env, self, method, fn)) return false;
  }
  return true;
}

// createReactor(dispatch, backend, allocateSlab) -> the object described in
// src/native.ts. Throws an Error with a code when the backend cannot be made;
// returns undefined, throwing nothing more, if the environment is going away.
napi_value create_reactor_unguarded(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3] = {nullptr, nullptr, nullptr};
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3) {
    return nullptr;
  }
  size_t length = 0;
  if (napi_get_value_string_utf8(env, argv[1], nullptr, 0, &length) != napi_ok) return nullptr;
  std::string name(length, '\0');
  napi_get_value_string_utf8(env, argv[1], name.data(), length + 1, &length);

  std::string error;
  int fallback = 0;
  std::unique_ptr<Poller> poller = make_poller(name, &error, &fallback);
  if (!poller) {
    throw_error(env, error, "backend unavailable: " + name + " (" + error + ")");
    return nullptr;
  }
  napi_value self = nullptr;
  if (napi_create_object(env, &self) != napi_ok ||
      !set_property(env, self, "backend", string_value(env, poller->name())) ||
      !set_property(env, self, "fallbackErrno", number_value(env, fallback))) {
    return nullptr;
  }
  auto core = std::make_unique<Core>(env);
  napi_value records = nullptr;
  napi_value corked = nullptr;
  int uv_error = 0;
  bool made = false;
  try {
    made = core->init(std::move(poller), argv[0], argv[2], self, &records, &corked, &uv_error);
  } catch (...) {
    uv_error = UV_ENOMEM;
  }
  if (!made) {
    core.release()->discard();
    if (uv_error) throw_error(env, uv_err_name(uv_error), uv_strerror(uv_error));
    return nullptr;
  }
  Core* owned = core.release();
  // Held while the functions are made, so a failure halfway frees it once.
  owned->retain();
  bool ok = set_property(env, self, "records", records) &&
            set_property(env, self, "corked", corked) && add_methods(env, self, owned);
  if (!ok) owned->shutdown();
  owned->release();
  return ok ? self : nullptr;
}

napi_value create_reactor(napi_env env, napi_callback_info info) {
  napi_value result = nullptr;
  try {
    result = create_reactor_unguarded(env, info);
  } catch (...) {
    result = nullptr;  // bad_alloc
  }
  bool pending = false;
  if (!result && napi_is_exception_pending(env, &pending) == napi_ok && !pending) {
    // A Node-API call failed for want of memory (or the environment is going
    // away, and this throws nothing).
    throw_error(env, "ENOMEM", "out of memory creating a reactor");
  }
  return result;
}

// The record layout JavaScript reads, exported as recordLayout: src/native.ts
// checks at load that it reads records as this binary writes them, so a
// binary from another version is refused instead of misread.
static_assert(std::is_standard_layout_v<Record> && sizeof(Record) == 5 * sizeof(int32_t) &&
                  offsetof(Record, kind) == 0 && offsetof(Record, slot) == 4 &&
                  offsetof(Record, gen) == 8 && offsetof(Record, a) == 12 &&
                  offsetof(Record, b) == 16,
              "JavaScript reads a Record as five packed int32 words: kind, slot, gen, a, b");

using NamedNumber = std::pair<const char*, int32_t>;

constexpr NamedNumber kRecordKinds[] = {
    {"accepted", kAccepted},
    {"connected", kConnected},
    {"data", kData},
    {"eof", kEof},
    {"closed", kClosed},
    {"timer", kTimer},
    {"drain", kDrain},
    {"idle", kIdle},
    {"watch", kWatch},
    {"datagram", kDatagram},
    {"datagramError", kDatagramError},
    {"httpRequest", kHttpRequest},
    {"httpBody", kHttpBody},
    {"httpEnd", kHttpEnd},
};

constexpr NamedNumber kCloseReasons[] = {
    {"none", kReasonNone},
    {"idle", kReasonIdle},
    {"graceExpired", kReasonGraceExpired},
};

template <size_t N>
napi_value numbers_by_name(napi_env env, const NamedNumber (&entries)[N]) {
  napi_value object = nullptr;
  if (napi_create_object(env, &object) != napi_ok) return nullptr;
  for (const auto& [name, value] : entries) {
    if (!set_property(env, object, name, number_value(env, value))) return nullptr;
  }
  return object;
}

// { words, kinds: { accepted: 1, ... }, closeReasons: { none: 0, ... } }
napi_value record_layout(napi_env env) {
  napi_value layout = nullptr;
  if (napi_create_object(env, &layout) != napi_ok ||
      !set_property(env, layout, "words", number_value(env, sizeof(Record) / sizeof(int32_t))) ||
      !set_property(env, layout, "kinds", numbers_by_name(env, kRecordKinds)) ||
      !set_property(env, layout, "closeReasons", numbers_by_name(env, kCloseReasons))) {
    return nullptr;
  }
  return layout;
}

// Module init in plain Node-API: a worker terminated while it loads the addon
// makes these calls fail, and that must not abort the process.
napi_value init(napi_env env, napi_value exports) {
  if (int error = net_init()) {
    throw_error(env, "ERR_REACTOR_SOCKETS",
                "socket layer unavailable: errno " + std::to_string(error));
    return nullptr;
  }
  napi_value backends = nullptr;
  if (napi_create_array(env, &backends) != napi_ok) return nullptr;
  uint32_t index = 0;
  for (const std::string& name : available_backends()) {
    napi_value v = string_value(env, name.c_str());
    if (!v || napi_set_element(env, backends, index++, v) != napi_ok) return nullptr;
  }
  for (const auto& [name, callback] : kModuleFunctions) {
    napi_value fn = nullptr;
    if (napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, nullptr, &fn) != napi_ok ||
        !set_property(env, exports, name, fn)) {
      return nullptr;
    }
  }
  napi_value create = nullptr;
  if (napi_create_function(env, "createReactor", NAPI_AUTO_LENGTH, create_reactor, nullptr,
                           &create) != napi_ok ||
      !set_property(env, exports, "createReactor", create) ||
      !set_property(env, exports, "backends", backends) ||
      !set_property(env, exports, "recordLayout", record_layout(env))) {
    return nullptr;
  }
  return exports;
}

}  // namespace
}  // namespace reactor

NAPI_MODULE_INIT() {
  try {
    return reactor::init(env, exports);
  } catch (...) {
    return nullptr;  // out of memory listing the backends
  }
}
