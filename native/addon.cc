// The only file that speaks Node-API. A NativeReactor wraps one Loop and
// nests it in Node's libuv loop: a uv_poll on the backend's fd, a uv_timer
// armed to the earliest native deadline and a uv_prepare that applies interest
// changes before libuv blocks. Records reach JavaScript in one MakeCallback
// per batch. All state hangs off the JavaScript object or the environment's
// cleanup hook; nothing is static.
#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loop.h"

namespace reactor {
namespace {

constexpr size_t kRecordCapacity = 1024;
constexpr size_t kSlabSize = 1024 * 1024;

// Owns the loop and the libuv handles. Freed when the JavaScript wrapper is
// gone and every libuv handle has finished closing, whichever comes last.
class Core final : public Sink {
 public:
  Core(Napi::Env env, std::unique_ptr<Poller> poller, Napi::Function dispatch,
       Napi::Object resource)
      : env_(env), async_context_(std::make_unique<Napi::AsyncContext>(env, "NativeReactor", resource)) {
    dispatch_ = Napi::Persistent(dispatch);
    resource_ = Napi::Persistent(resource);
    Napi::ArrayBuffer records = Napi::ArrayBuffer::New(env, kRecordCapacity * sizeof(Record));
    records_ = Napi::Persistent(records);
    loop_ = std::make_unique<Loop>(std::move(poller), this,
                                   static_cast<Record*>(records.Data()), kRecordCapacity);

    uv_loop_t* uv = nullptr;
    napi_get_uv_event_loop(env, &uv);
    uv_poll_init(uv, &poll_, loop_->pollable_fd());
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
  // while listeners or connections exist, the timer while timers are pending,
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
        uv_unref(handle(&timer_));
      } else {
        uint64_t now = Loop::now_ms();
        uv_timer_start(&timer_, on_timer, deadline > now ? deadline - now : 0, 0);
        uv_ref(handle(&timer_));
      }
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
  }

  void wrapper_gone() {
    wrapper_alive_ = false;
    shutdown();
    free_if_done();
  }

  void deliver(const Record*, size_t count) override {
    if (closed_) return;
    napi_value slab = slab_changed_ ? slab_.Value() : env_.Undefined();
    slab_changed_ = false;
    napi_value args[] = {Napi::Number::New(env_, static_cast<double>(count)), slab};
    napi_value result;
    // Plain Node-API here: while a worker terminates, JavaScript cannot run
    // and node-addon-api's error path would abort the process.
    if (napi_make_callback(env_, static_cast<napi_async_context>(*async_context_), resource_.Value(), dispatch_.Value(), 2,
                           args, &result) == napi_ok) {
      return;
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
  }

  Slab fresh_slab() override {
    Napi::ArrayBuffer slab = Napi::ArrayBuffer::New(env_, kSlabSize);
    slab_ = Napi::Persistent(slab);
    slab_changed_ = true;
    return {static_cast<uint8_t*>(slab.Data()), slab.ByteLength()};
  }

 private:
  static uv_handle_t* handle(void* h) { return static_cast<uv_handle_t*>(h); }
  std::vector<uv_handle_t*> handles() { return {handle(&poll_), handle(&timer_), handle(&prepare_)}; }
  static Core* from(void* h) { return static_cast<Core*>(static_cast<uv_handle_t*>(h)->data); }

  // Destroys the loop (its backend and reserve fds) unless it is on the stack,
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
    Core* core = from(h);
    uv_prepare_stop(h);
    if (core->closed_) return;
    core->loop_->prepare_wait();
  }

  static void on_env_cleanup(void* data) { static_cast<Core*>(data)->shutdown(); }

  static void on_handle_closed(uv_handle_t* h) {
    Core* core = from(h);
    core->open_handles_--;
    core->free_if_done();
  }

  void free_if_done() {
    if (!wrapper_alive_ && open_handles_ == 0) delete this;
  }

  Napi::Env env_;
  std::unique_ptr<Napi::AsyncContext> async_context_;
  Napi::FunctionReference dispatch_;
  Napi::ObjectReference resource_;
  Napi::Reference<Napi::ArrayBuffer> records_;
  Napi::Reference<Napi::ArrayBuffer> slab_;
  bool slab_changed_ = false;
  std::unique_ptr<Loop> loop_;
  uv_poll_t poll_{};
  uv_timer_t timer_{};
  uv_prepare_t prepare_{};
  uint64_t armed_deadline_ = TimerHeap::kNever;
  bool poll_ref_ = false;
  int running_ = 0;  // depth of loop calls on the stack
  bool closed_ = false;
  bool wrapper_alive_ = true;
  int open_handles_ = 3;
};

uint64_t to_id(const Napi::Value& value) {
  return static_cast<uint64_t>(value.As<Napi::Number>().Int64Value());
}

iovec to_iovec(const Napi::Value& value) {
  Napi::Uint8Array bytes = value.As<Napi::Uint8Array>();
  return {bytes.Data(), bytes.ByteLength()};
}

const char* family_name(SocketAddress::Family family) {
  switch (family) {
    case SocketAddress::kIPv4: return "IPv4";
    case SocketAddress::kIPv6: return "IPv6";
    case SocketAddress::kUnix: return "unix";
    default: return "unknown";
  }
}

// The JavaScript class. Arguments are validated in src/ before they get here;
// results are numbers (negative errno on failure) so errors are built in one
// place on the JavaScript side.
class NativeReactor : public Napi::ObjectWrap<NativeReactor> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "NativeReactor",
        {
            InstanceMethod<&NativeReactor::ListenTcp>("listenTcp"),
            InstanceMethod<&NativeReactor::ListenUnix>("listenUnix"),
            InstanceMethod<&NativeReactor::ConnectTcp>("connectTcp"),
            InstanceMethod<&NativeReactor::ConnectUnix>("connectUnix"),
            InstanceMethod<&NativeReactor::Write>("write"),
            InstanceMethod<&NativeReactor::Writev>("writev"),
            InstanceMethod<&NativeReactor::End>("end"),
            InstanceMethod<&NativeReactor::Close>("close"),
            InstanceMethod<&NativeReactor::Abort>("abort"),
            InstanceMethod<&NativeReactor::SetNoDelay>("setNoDelay"),
            InstanceMethod<&NativeReactor::SetKeepAlive>("setKeepAlive"),
            InstanceMethod<&NativeReactor::Address>("address"),
            InstanceMethod<&NativeReactor::QueuedBytes>("queuedBytes"),
            InstanceMethod<&NativeReactor::TimerStart>("timerStart"),
            InstanceMethod<&NativeReactor::TimerCancel>("timerCancel"),
            InstanceMethod<&NativeReactor::TimerReset>("timerReset"),
            InstanceMethod<&NativeReactor::Shutdown>("shutdown"),
        });
  }

  // new NativeReactor(dispatch, backend)
  explicit NativeReactor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeReactor>(info) {
    Napi::Env env = info.Env();
    std::string error;
    std::unique_ptr<Poller> poller = make_poller(info[1].As<Napi::String>().Utf8Value(), &error);
    if (!poller) {
      Napi::Error e = Napi::Error::New(env, "backend unavailable: " + info[1].ToString().Utf8Value());
      e.Set("code", Napi::String::New(env, error));
      throw e;
    }
    std::string backend = poller->name();
    core_ = new Core(env, std::move(poller), info[0].As<Napi::Function>(), info.This().As<Napi::Object>());
    Napi::Object self = info.This().As<Napi::Object>();
    Napi::ArrayBuffer records = core_->records();
    self.Set("records", Napi::Int32Array::New(env, records.ByteLength() / sizeof(int32_t), records, 0));
    self.Set("backend", Napi::String::New(env, backend));
  }

  ~NativeReactor() override { core_->wrapper_gone(); }

 private:
  // Runs op on the live loop, then brings libuv in step; -EBADF once closed.
  template <typename Op>
  Napi::Value with_loop(const Napi::CallbackInfo& info, Op op) {
    Loop* loop = core_->loop();
    if (!loop) return Napi::Number::New(info.Env(), -EBADF);
    double result = static_cast<double>(op(*loop));
    core_->sync();
    return Napi::Number::New(info.Env(), result);
  }

  static ListenOptions listen_options(const Napi::CallbackInfo& info, size_t at) {
    ListenOptions options;
    options.backlog = info[at].As<Napi::Number>().Int32Value();
    if (info.Length() > at + 1) options.reuse_port = info[at + 1].ToBoolean();
    if (info.Length() > at + 2) options.ipv6_only = info[at + 2].ToBoolean();
    return options;
  }

  // listenTcp(host, port, backlog, reusePort, ipv6Only)
  Napi::Value ListenTcp(const Napi::CallbackInfo& info) {
    std::string host = info[0].As<Napi::String>();
    int port = info[1].As<Napi::Number>().Int32Value();
    ListenOptions options = listen_options(info, 2);
    return with_loop(info, [&](Loop& l) { return l.listen_tcp(host, port, options); });
  }

  // listenUnix(path, backlog)
  Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
    std::string path = info[0].As<Napi::String>();
    ListenOptions options = listen_options(info, 1);
    return with_loop(info, [&](Loop& l) { return l.listen_unix(path, options); });
  }

  Napi::Value ConnectTcp(const Napi::CallbackInfo& info) {
    std::string host = info[0].As<Napi::String>();
    int port = info[1].As<Napi::Number>().Int32Value();
    return with_loop(info, [&](Loop& l) { return l.connect_tcp(host, port); });
  }

  Napi::Value ConnectUnix(const Napi::CallbackInfo& info) {
    std::string path = info[0].As<Napi::String>();
    return with_loop(info, [&](Loop& l) { return l.connect_unix(path); });
  }

  // write(id, bytes)
  Napi::Value Write(const Napi::CallbackInfo& info) {
    iovec chunk = to_iovec(info[1]);
    return with_loop(info, [&](Loop& l) { return l.write(to_id(info[0]), &chunk, 1); });
  }

  // writev(id, [bytes, ...])
  Napi::Value Writev(const Napi::CallbackInfo& info) {
    Napi::Array list = info[1].As<Napi::Array>();
    std::vector<iovec> chunks(list.Length());
    for (uint32_t i = 0; i < list.Length(); i++) chunks[i] = to_iovec(list.Get(i));
    int count = static_cast<int>(std::min<size_t>(chunks.size(), IOV_MAX));
    if (static_cast<size_t>(count) < chunks.size()) {
      // More chunks than one sendmsg takes: queue them in order instead.
      return with_loop(info, [&](Loop& l) {
        int64_t result = 0;
        for (size_t at = 0; at < chunks.size() && result >= 0; at += IOV_MAX) {
          int n = static_cast<int>(std::min<size_t>(IOV_MAX, chunks.size() - at));
          result = l.write(to_id(info[0]), &chunks[at], n);
        }
        return result;
      });
    }
    return with_loop(info, [&](Loop& l) { return l.write(to_id(info[0]), chunks.data(), count); });
  }

  Napi::Value End(const Napi::CallbackInfo& info) {
    return with_loop(info, [&](Loop& l) { return l.end(to_id(info[0])); });
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    return with_loop(info, [&](Loop& l) { return l.close(to_id(info[0])); });
  }

  Napi::Value Abort(const Napi::CallbackInfo& info) {
    return with_loop(info, [&](Loop& l) { return l.abort(to_id(info[0])); });
  }

  Napi::Value SetNoDelay(const Napi::CallbackInfo& info) {
    bool enable = info[1].ToBoolean();
    return with_loop(info, [&](Loop& l) { return l.set_no_delay(to_id(info[0]), enable); });
  }

  // setKeepAlive(id, enable, idleSeconds, intervalSeconds, count)
  Napi::Value SetKeepAlive(const Napi::CallbackInfo& info) {
    bool enable = info[1].ToBoolean();
    int idle = info[2].As<Napi::Number>().Int32Value();
    int interval = info[3].As<Napi::Number>().Int32Value();
    int count = info[4].As<Napi::Number>().Int32Value();
    return with_loop(info, [&](Loop& l) {
      return l.set_keep_alive(to_id(info[0]), enable, idle, interval, count);
    });
  }

  // address(id, peer) -> { address, port, family } or -errno
  Napi::Value Address(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Loop* loop = core_->loop();
    if (!loop) return Napi::Number::New(env, -EBADF);
    SocketAddress address;
    int rc = loop->address(to_id(info[0]), info[1].ToBoolean(), &address);
    if (rc < 0) return Napi::Number::New(env, rc);
    Napi::Object result = Napi::Object::New(env);
    result.Set("address", address.address);
    result.Set("port", address.port);
    result.Set("family", family_name(address.family));
    return result;
  }

  Napi::Value QueuedBytes(const Napi::CallbackInfo& info) {
    return with_loop(info, [&](Loop& l) { return l.queued_bytes(to_id(info[0])); });
  }

  Napi::Value TimerStart(const Napi::CallbackInfo& info) {
    uint64_t ms = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    return with_loop(info, [&](Loop& l) { return l.timer_start(ms); });
  }

  Napi::Value TimerCancel(const Napi::CallbackInfo& info) {
    return with_loop(info, [&](Loop& l) { return l.timer_cancel(to_id(info[0])) ? 1 : 0; });
  }

  Napi::Value TimerReset(const Napi::CallbackInfo& info) {
    uint64_t ms = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
    return with_loop(info, [&](Loop& l) { return l.timer_reset(to_id(info[0]), ms) ? 1 : 0; });
  }

  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    core_->shutdown();
    return info.Env().Undefined();
  }

  Core* core_;
};

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    Napi::Array backends = Napi::Array::New(env);
    for (const std::string& name : available_backends()) backends[backends.Length()] = name;
    DefineAddon(exports, {InstanceValue("NativeReactor", NativeReactor::Define(env)),
                          InstanceValue("backends", backends)});
  }
};

}  // namespace
}  // namespace reactor

using ReactorAddon = reactor::Addon;
NODE_API_ADDON(ReactorAddon)
