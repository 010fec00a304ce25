// HTTP listeners' connections: bytes read for them go through the request
// parser in the read path, and a request becomes records (its head as one
// descriptor, its body, its end); responses are framed and written here.
// One request at a time per connection: the bytes after it wait, unparsed,
// until its response ends, so responses to pipelined requests keep their
// order. Requests the parser or a limit refuses are answered here, without
// JavaScript, and the connection closed.
#include <cerrno>
#include <cstring>

#include "loop_core.h"

namespace reactor {
namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// Records one parse step may emit: a head, a body piece, the end.
constexpr size_t kRecordsPerStep = 3;

// The shared parser stays in its final state after an error or an upgrade
// (or went to an exchange): the next connection gets a fresh one.
void reset_shared_parser(http::ListenerHttp* listener) {
  listener->shared = std::make_unique<http::RequestParser>(listener->config.limits);
}

iovec chunk_of(std::string_view bytes) { return {const_cast<char*>(bytes.data()), bytes.size()}; }

}  // namespace

int LoopCore::configure_http(uint64_t packed, const http::ServerConfig& config) {
  Id id;
  Handle* l = find(packed, &id);
  if (!l || l->kind != Kind::kListener) return -EBADF;
  l->listening()->http = std::make_unique<http::ListenerHttp>(config);
  return 0;
}

http::ListenerHttp* LoopCore::http_listener(const Handle& c) {
  Listener* listener = listener_at(c.listener);
  return listener ? listener->http.get() : nullptr;
}

bool LoopCore::http_received(Id id, Handle* c, const uint8_t* data, size_t length) {
  http::Exchange* x = http_.find(id.slot);
  if (x && (x->message_done || x->body_paused || !x->pending.empty())) {
    // Not parsed before the response ends (the next request) or the body
    // resumes; past the bound the socket is not read either.
    x->pending.append(reinterpret_cast<const char*>(data), length);
    http::ListenerHttp* listener = http_listener(*c);
    if (!listener || x->pending.size() > listener->config.max_pending_bytes) {
      set_reading(id.packed(), false);
    }
    return true;
  }
  return http_parse(id, c, data, length);
}

bool LoopCore::http_parse(Id id, Handle* c, const uint8_t* data, size_t length) {
  const char* at = reinterpret_cast<const char*>(data);
  for (;;) {
    http::ListenerHttp* listener = http_listener(*c);
    if (!listener) {
      // Its listener closed: no request is taken any more.
      release(id, c, 0);
      return false;
    }
    http::Exchange* x = http_.find(id.slot);
    if ((x && x->body_paused) || record_count_ + kRecordsPerStep > record_capacity_) {
      // Parsed later (the body resumes, or the next settle), never under a
      // delivery made from here.
      if (length == 0) return true;
      if (!x) x = http_.make(id.slot);
      x->pending.append(at, length);
      if (!x->body_paused) http_.to_resume.push_back(id.packed());
      return true;
    }
    http::RequestParser* parser = x && x->parser ? x->parser.get() : listener->shared.get();
    http::RequestParser::Result r = parser->parse(at, length);
    at += r.consumed;
    length -= r.consumed;
    switch (r.event) {
      case http::RequestParser::Event::kNeedMore: {
        if (parser->at_message_boundary()) {
          if (x && !x->head_done) http_.finish(id.slot);
          return true;
        }
        if (!x) x = http_.make(id.slot);
        if (!x->parser) {
          // The message goes on in a later read: the shared parser's state
          // becomes this connection's.
          x->parser = std::move(listener->shared);
          reset_shared_parser(listener);
        }
        uint64_t now = activity_ms();
        if (x->head_done) {
          // A body trickling in: its reads keep the idle clock going, the
          // request's own clock does not restart.
          uint32_t limit = listener->config.request_timeout_ms;
          if (limit != 0 && !x->message_done && now - x->head_started_ms >= limit) {
            return http_refuse(id, c, 408);
          }
          return true;
        }
        if (x->head_started_ms == 0) {
          x->head_started_ms = now;
          c->idle_ms = listener->config.header_timeout_ms;
          start_idle_clock(id, c);
        } else if (now - x->head_started_ms >= listener->config.header_timeout_ms) {
          // A head trickling in (slowloris): its reads keep the idle clock
          // going, the head's own clock does not restart.
          return http_refuse(id, c, 408);
        }
        return true;
      }
      case http::RequestParser::Event::kHead: {
        if (!x) x = http_.make(id.slot);
        const http::RequestHead& head = parser->head();
        x->head_done = true;
        x->keep_alive = head.keep_alive && !head.upgrade && !listener->draining;
        x->head_only = head.method_is_head;
        x->version_minor = head.version_minor;
        bool expects_body = head.framing != http::BodyFraming::kNone;
        bool send_continue = head.expect_continue && head.version_minor >= 1 && expects_body;
        uint64_t now = activity_ms();
        if (x->head_started_ms == 0) x->head_started_ms = now;
        // The body has what is left of the request's time; a response may
        // take its own (a long-poll): no idle clock then.
        uint32_t limit = listener->config.request_timeout_ms;
        uint64_t elapsed = now - x->head_started_ms;
        c->idle_ms = expects_body && limit != 0
                         ? static_cast<uint32_t>(elapsed < limit ? limit - elapsed : 1)
                         : 0;
        start_idle_clock(id, c);
        stats_.http_requests++;
        const uint8_t* slab_before = slab_.data;
        if (!http_deliver_head(id, c, head)) return false;
        c = table_.get(id);
        if (send_continue) {
          // At once, as node:http does without a 'checkContinue' listener.
          iovec line = chunk_of(kContinue);
          if (write(id.packed(), &line, 1) < 0) return false;
          c = table_.get(id);
          if (!c) return false;
        }
        if (slab_.data != slab_before && length > 0) {
          // The rest is in the old slab: parsed from a copy at the next settle.
          x = http_.find(id.slot);
          x->pending.append(at, length);
          http_.to_resume.push_back(id.packed());
          return true;
        }
        continue;
      }
      case http::RequestParser::Event::kBody:
        emit(kHttpBody, id,
             static_cast<int32_t>(reinterpret_cast<const uint8_t*>(r.data) - slab_.data),
             static_cast<int32_t>(r.length));
        continue;
      case http::RequestParser::Event::kMessageComplete:
        emit(kHttpEnd, id);
        x->message_done = true;
        x->parser.reset();
        if (c->idle_ms != 0) {
          // The body's clock: the response takes its own time.
          c->idle_ms = 0;
          start_idle_clock(id, c);
        }
        if (length > 0) http_received(id, c, reinterpret_cast<const uint8_t*>(at), length);
        return true;
      case http::RequestParser::Event::kUpgraded:
        // Upgrades are not served: the response to the head is the last.
        if (parser == listener->shared.get()) reset_shared_parser(listener);
        emit(kHttpEnd, id);
        x->message_done = true;
        x->keep_alive = false;
        c->reading = false;
        mark_dirty(id, c);
        return true;
      case http::RequestParser::Event::kError: {
        int status = parser->error_status();
        if (parser == listener->shared.get()) reset_shared_parser(listener);
        return http_refuse(id, c, status);
      }
    }
  }
}

bool LoopCore::http_deliver_head(Id id, Handle* c, const http::RequestHead& head) {
  size_t size = http::descriptor_size(head);
  size_t offset = (slab_used_ + 3) & ~size_t{3};
  if (offset + size <= slab_.size) {
    http::write_descriptor(head, c->listener.slot, c->listener.gen, slab_.data + offset);
  } else {
    // The slab is full: the descriptor goes first in a fresh one (the head's
    // bytes may be in the old one, or in the parser, so it is made first).
    std::vector<uint8_t> descriptor(size);
    http::write_descriptor(head, c->listener.slot, c->listener.gen, descriptor.data());
    start_new_slab();
    c = table_.get(id);
    if (!c) return false;
    if (slab_.size < size) {
      set_reset_on_close(c->fd);
      release(id, c, ENOMEM);
      return false;
    }
    offset = 0;
    std::memcpy(slab_.data, descriptor.data(), size);
  }
  slab_used_ = offset + size;
  emit(kHttpRequest, id, static_cast<int32_t>(offset), static_cast<int32_t>(size));
  return true;
}

bool LoopCore::http_refuse(Id id, Handle* c, int status) {
  stats_.http_refused++;
  http::Exchange* x = http_.find(id.slot);
  bool responding = x && x->response_started;
  http_.finish(id.slot);
  if (responding) {
    // A response is under way: no other can be sent.
    set_reset_on_close(c->fd);
    release(id, c, 0);
    return false;
  }
  iovec answer = chunk_of(http::error_response(status));
  if (write(id.packed(), &answer, 1) < 0) return false;
  c = table_.get(id);
  if (!c) return false;
  linger(id, c, limits_.linger_ms);
  return table_.get(id) != nullptr;
}

bool LoopCore::http_request_timed_out(Id id, Handle* c) {
  http::Exchange* x = http_.find(id.slot);
  if (!x || x->message_done || (!x->head_done && x->head_started_ms == 0)) return false;
  http_refuse(id, c, 408);
  return true;
}

int64_t LoopCore::http_respond(uint64_t packed, const http::ResponseHead* head, const iovec* body,
                               int count, bool end) {
  Id id;
  Handle* c = find_stream(packed, &id);
  if (!c || !c->http) return -EBADF;
  http::Exchange* x = http_.find(id.slot);
  if (!x || !x->responding()) return -EPIPE;
  constexpr int kMaxBody = 8;
  if ((head != nullptr) == x->response_started || count > kMaxBody) return -EINVAL;
  size_t total = 0;
  for (int i = 0; i < count; i++) total += body[i].iov_len;
  std::string& out = http_.scratch;
  out.clear();
  if (head) {
    http::ListenerHttp* listener = http_listener(*c);
    if (!listener || listener->draining) x->keep_alive = false;  // the client must not send more
    http::format_response_head(*head, x, end ? static_cast<int64_t>(total) : -1, &http_.date, &out);
    x->response_started = true;
    x->sends_body = http::has_body(head->status, *x);
  }
  // A small body goes in the same buffer as the head and its framing: one
  // send() instead of a sendmsg() of several pieces.
  constexpr size_t kCopyBelow = 4096;
  bool body_goes = x->sends_body && total > 0;
  if (body_goes && x->chunked) {
    http::append_number(&out, total, 16);
    out.append("\r\n");
  }
  iovec chunks[kMaxBody + 2];
  int n = 0;
  bool copied = body_goes && total < kCopyBelow;
  if (copied) {
    for (int i = 0; i < count; i++) {
      out.append(static_cast<const char*>(body[i].iov_base), body[i].iov_len);
    }
  }
  std::string_view trailer;
  if (x->chunked && body_goes) {
    trailer = end ? "\r\n0\r\n\r\n" : "\r\n";
  } else if (x->chunked && end) {
    trailer = "0\r\n\r\n";
  }
  if (copied || !body_goes) out.append(trailer);
  if (!out.empty()) chunks[n++] = chunk_of(out);
  if (body_goes && !copied) {
    for (int i = 0; i < count; i++) chunks[n++] = body[i];
    if (!trailer.empty()) chunks[n++] = chunk_of(trailer);
  }
  int64_t result = n > 0 ? write(packed, chunks, n) : static_cast<int64_t>(c->queue.size());
  if (result < 0 || !end) return result;
  c = table_.get(id);
  if (c) http_response_ended(id, c, x);
  return result;
}

// Called from JavaScript: nothing here emits a record.
void LoopCore::http_response_ended(Id id, Handle* c, http::Exchange* x) {
  x->response_done = true;
  http::ListenerHttp* listener = http_listener(*c);
  c->http_served = 1;
  if (!x->keep_alive || !x->message_done || x->close_delimited || !listener || listener->draining) {
    // The response closes the connection (or its request is still coming:
    // its body is not waited for). Flushed, then the write side shut; the
    // client's last bytes are read and dropped so our close is no reset.
    http_.finish(id.slot);
    if (c->peer_ended) {
      close(id.packed());
    } else {
      linger(id, c, limits_.linger_ms);
    }
    return;
  }
  std::string pending = std::move(x->pending);
  http_.finish(id.slot);
  c->idle_ms = listener->config.keep_alive_ms;
  start_idle_clock(id, c);
  if (!pending.empty()) {
    // The next request is here already (pipelined): parsed at the next settle.
    http_.make(id.slot)->pending = std::move(pending);
    http_.to_resume.push_back(id.packed());
  } else if (c->paused) {
    set_reading(id.packed(), true);
  }
}

template <typename Visit>
void LoopCore::http_between_requests(Id listener, Visit visit) {
  // A walk of the table: a listener closes or drains seldom, and no list of
  // a listener's connections is kept for it.
  for (uint32_t slot = 0; slot < table_.capacity(); slot++) {
    Id id;
    if (!table_.live_at(slot, &id)) continue;
    Handle* c = table_.get(id);
    if (c->kind != Kind::kStream || !c->http || !(c->listener == listener)) continue;
    if (c->state == State::kOpen && !http_.find(slot)) visit(id, c);
  }
}

void LoopCore::http_close_idle(Id listener) {
  // JavaScript has nothing of a connection between requests: no record.
  http_between_requests(listener, [this](Id id, Handle* c) { forget(id, c); });
}

void LoopCore::http_drain(Id listener) {
  http_between_requests(listener, [this](Id id, Handle* c) {
    // One yet to send its first request is left to send it (it may be on
    // its way). A keep-alive one closes once idle for kDrainIdleMs (now, if
    // it has been already): a client that sends its next request sooner
    // gets it answered, with Connection: close, instead of a close racing it.
    if (!c->http_served) return;
    c->idle_ms = http::kDrainIdleMs;
    start_idle_clock(id, c);
  });
}

int LoopCore::http_set_body_reading(uint64_t packed, bool reading) {
  Id id;
  Handle* c = find_stream(packed, &id);
  if (!c || !c->http) return -EBADF;
  http::Exchange* x = http_.find(id.slot);
  if (!x || x->body_paused == !reading) return 0;
  x->body_paused = !reading;
  if (reading && !x->pending.empty()) http_.to_resume.push_back(packed);
  if (reading && c->paused && !x->message_done) set_reading(packed, true);
  return 0;
}

void LoopCore::http_resume_pending() {
  std::vector<uint64_t> ids;
  ids.swap(http_.to_resume);
  for (uint64_t packed : ids) {
    Id id = Id::unpack(packed);
    Handle* c = table_.get(id);
    if (!c || !c->http || c->state != State::kOpen) continue;
    http::Exchange* x = http_.find(id.slot);
    if (!x || x->pending.empty() || x->body_paused || x->message_done) continue;
    size_t size = x->pending.size();
    if (slab_.size - slab_used_ < size + limits_.max_read) {
      start_new_slab();
      c = table_.get(id);
      x = http_.find(id.slot);
      if (!c || !x || x->pending.empty()) continue;
      size = x->pending.size();
      if (slab_.size - slab_used_ < size) {
        // No memory now: the connection is not served.
        set_reset_on_close(c->fd);
        release(id, c, ENOMEM);
        continue;
      }
    }
    // The bytes go to the slab, where records may point.
    uint8_t* at = slab_.data + slab_used_;
    std::memcpy(at, x->pending.data(), size);
    slab_used_ += size;
    x->pending.clear();
    if (c->paused) set_reading(packed, true);
    http_parse(id, c, at, size);
  }
}

}  // namespace reactor
