// Completions: the same paths as the readiness ones (listeners.cc's accept,
// streams.cc's read), for what a completion backend (io_uring) already did,
// and the input it took while a connection was paused (held_input.h).
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "loop_core.h"

namespace reactor {

void LoopCore::on_completion(const PollEvent& event) {
  Id id = Id::unpack(event.token);
  if (event.completion == kAcceptedFd) {
    on_accepted(id, event.result);
  } else if (event.result > 0) {
    on_received(id, event.data, static_cast<size_t>(event.result));
  } else {
    on_received_end(id, event.result);
  }
}

void LoopCore::on_accepted(Id id, int result) {
  Listener* listener = listener_at(id);
  if (result < 0) {
    // The multishot accept ended; it is armed again when the interest says
    // so: after the backoff for EMFILE/ENFILE, at once for the rest.
    if ((result == -EMFILE || result == -ENFILE) && listener && !listener->backoff) {
      start_backoff(id, listener);
    }
    return;
  }
  if (!listener) {
    // The listener closed while the accept was in flight: reset, as the
    // kernel resets the connections left in a closed listener's backlog.
    set_reset_on_close(result);
    close_socket(result);
    return;
  }
  take_accepted(id, table_.get(id)->tcp, &listener->admission, result);
}

// Delivers what points into the current slab (JavaScript may run), then reads
// go to a fresh one.
void LoopCore::start_new_slab() {
  deliver();
  slab_ = sink_->fresh_slab();
  slab_used_ = 0;
  undelivered_from_ = 0;
}

// Whether the undelivered batch has a kData record of this connection
// (emitted by take(); the batch it goes out with is stats_.batches + 1).
bool LoopCore::data_in_batch(Id id) const {
  return record_count_ > 0 && id.slot < data_batch_.size() &&
         data_batch_[id.slot] == stats_.batches + 1;
}

bool LoopCore::holds(Id id, const Handle& c) const { return c.paused || held_.has(id.slot); }

void LoopCore::on_received(Id id, const uint8_t* data, size_t length) {
  Handle* c = table_.get(id);
  if (!c || c->kind != Kind::kStream) return;
  if (c->state == State::kLingering || !c->reading) return;  // nobody wants them
  if (holds(id, *c)) {
    held_.append(id.slot, data, length);
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

void LoopCore::on_received_end(Id id, int result) {
  Handle* c = table_.get(id);
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
    held_.end(id.slot, error);
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

bool LoopCore::take(Id id, const uint8_t* data, size_t length) {
  Handle* c = table_.get(id);
  while (length > 0) {
    if (!c) return false;
    if (holds(id, *c)) {  // paused by JavaScript during a delivery
      held_.append(id.slot, data, length);
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
        held_.append(id.slot, data, length);
        held_.resume(id);
        return true;
      }
      continue;  // the delivery may have paused or closed it
    }
    if (c->http) {
      uint8_t* at = slab_.data + slab_used_;
      std::memcpy(at, data, n);
      stats_.bytes_in += n;
      if (c->idle_ms) restart_idle_clock(id, c);
      slab_used_ += n;
      data += n;
      length -= n;
      if (!http_received(id, c, at, n)) return false;
      c = table_.get(id);
      continue;
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
    if (c->idle_ms) restart_idle_clock(id, c);
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

// A multishot receive takes bytes from the socket until it is cancelled: at
// once, not before the next wait, so the kernel pushes back as it does with
// readiness. What it took meanwhile is held for resume.
void LoopCore::stop_receiving(Id id, Handle* c) {
  if (c->registered == kUnregistered || !(c->registered & kReceive)) return;
  uint32_t want = desired_interest(*c);
  if (want != kDetached && poller_->modify(c->fd, id.packed(), want) == 0) {
    c->registered = static_cast<uint8_t>(want);
  }
}

void LoopCore::resume_held(Id id, const Handle* c) {
  if (holds(id, *c)) held_.resume(id);
}

// Resumed connections get their held input first, then what follows.
void LoopCore::serve_held() {
  for (Id id : held_.take_resumed()) {
    Handle* c = table_.get(id);
    if (!c || c->paused) continue;  // resume() queues it again
    HeldInput::Input held;
    if (!held_.take(id.slot, &held)) continue;
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
      if (held.ended) held_.end(id.slot, 0);
      if (held.error) held_.end(id.slot, held.error);
      continue;
    }
    on_received_end(id, held.error ? -held.error : 0);
  }
}

}  // namespace reactor
