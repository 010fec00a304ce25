// Timers and per-handle deadlines: idle timeouts, the grace period of a
// reaped connection, the queue timeout of a parked one, the accept backoff.
#include <algorithm>
#include <chrono>

#include "loop_core.h"
#include "platform.h"

namespace reactor {
namespace {

// steady_clock is CLOCK_MONOTONIC on Linux and QueryPerformanceCounter on
// Windows.
uint64_t monotonic_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

uint64_t LoopCore::now_ms() { return monotonic_ns() / 1000000; }

// The clock rounded up to the next millisecond. Every deadline counts from
// it, so none comes before its full delay has passed (now_ms() rounds down).
uint64_t LoopCore::start_ms() { return (monotonic_ns() + 999999) / 1000000; }

uint64_t LoopCore::deadline_after(uint64_t delay_ms) {
  return delay_ms == 0 ? now_ms() : start_ms() + delay_ms;
}

// ---- timers ---------------------------------------------------------------

int64_t LoopCore::timer_start(uint64_t delay_ms) {
  Id id;
  if (!timers_.start(deadline_after(delay_ms), &id)) return -ENOMEM;
  return static_cast<int64_t>(id.packed());
}

bool LoopCore::timer_cancel(uint64_t id) { return timers_.cancel(Id::unpack(id)); }

bool LoopCore::timer_reset(uint64_t id, uint64_t delay_ms) {
  return timers_.reset(Id::unpack(id), deadline_after(delay_ms));
}

void LoopCore::run_timers() {
  stats_.loop_iterations++;
  uint64_t now = now_ms();
  Id id;
  while (timers_.pop_expired(now, &id)) emit(kTimer, id);
  uint32_t slot;
  while (next_due(now, &slot)) {
    if (!table_.live_at(slot, &id)) {
      deadlines_.clear(slot);  // idle_ holds live slots only: forget() takes them out
      continue;
    }
    on_deadline(id, table_.get(id), now);
  }
  deliver();
  settle();
  apply_interest();
  poller_->commit();
}

// ---- deadlines --------------------------------------------------------------

bool LoopCore::next_due(uint64_t now, uint32_t* slot) const {
  uint64_t idle_due = idle_.next_deadline();
  uint64_t other_due = deadlines_.next_deadline();
  if (std::min(idle_due, other_due) > now) return false;
  *slot = idle_due <= other_due ? idle_.next_slot() : deadlines_.next_slot();
  return true;
}

void LoopCore::start_idle_clock(Id id, Handle* c) {
  if (c->idle_ms == 0) {
    idle_.remove(id.slot);
    deadlines_.clear(id.slot);
    return;
  }
  c->last_active = activity_ms();
  schedule_idle(id, c);
}

void LoopCore::restart_idle_clock(Id id, Handle* c) {
  uint64_t now = activity_ms();
  if (now == c->last_active) return;  // the same deadline: its place stays right
  c->last_active = now;
  // No clock started later than now, so the back of the list is its place. A
  // deadline in the heap is moved when it comes due (see on_deadline).
  idle_.move_to_back(id.slot, c->idle_ms);
}

void LoopCore::schedule_idle(Id id, Handle* c) {
  idle_.remove(id.slot);
  if (idle_.push_back(id.slot, c->idle_ms)) {
    deadlines_.clear(id.slot);
  } else {
    deadlines_.set(id.slot, c->last_active + c->idle_ms);
  }
}

// Every handler either clears the slot's deadline or moves it later. An idle
// deadline comes from idle_ (always truly due) or from the heap (moved lazily).
void LoopCore::on_deadline(Id id, Handle* c, uint64_t now) {
  if (c->kind == Kind::kListener) {
    // The accept backoff is over.
    deadlines_.clear(id.slot);
    c->listening()->backoff = false;
    mark_dirty(id, c);
    return;
  }
  switch (c->state) {
    case State::kParked:
      stats_.queue_timeouts++;
      if (Admission* admission = admission_of(c->listener)) {
        reject(id, c, admission->policy);
      } else {
        reject(id, c, AdmissionPolicy{});
      }
      return;
    case State::kLingering:
      // The peer did not close in time.
      set_reset_on_close(c->fd);
      release(id, c, 0, c->reaped ? kReasonGraceExpired : kReasonNone);
      return;
    case State::kConnecting:
      deadlines_.clear(id.slot);
      return;
    case State::kOpen:
    case State::kClosing:
      break;
  }
  if (c->idle_ms == 0) {
    idle_.remove(id.slot);
    deadlines_.clear(id.slot);
    return;
  }
  if (c->last_active + c->idle_ms > now) {
    // A heap deadline, active since it was scheduled (a list's head is always
    // due). It stays in the heap: a list only takes clocks started now.
    deadlines_.set(id.slot, c->last_active + c->idle_ms);
    return;
  }
  stats_.idle_timeouts++;
  if (c->idle_notify && c->state == State::kOpen) {
    // The protocol decides; unless it acts, the connection gets another
    // period, counted like any restarted clock.
    c->last_active = activity_ms();
    schedule_idle(id, c);
    emit(kIdle, id);
    return;
  }
  if (c->http && http_request_timed_out(id, c)) return;
  reap(id, c);
}

void LoopCore::reap(Id id, Handle* c) {
  stats_.reaped++;
  c->reaped = true;
  if (c->state == State::kClosing) {
    // Its peer stopped reading what we still had to send.
    set_reset_on_close(c->fd);
    release(id, c, 0);
    return;
  }
  linger(id, c, c->limits.get().grace_ms);
}

void LoopCore::linger(Id id, Handle* c, uint32_t ms) {
  c->state = State::kLingering;
  c->paused = false;
  c->hup_seen = false;
  c->reading = !c->peer_ended;
  c->end_requested = true;
  c->drain_wanted = false;
  resume_held(id, c);  // an end may wait there
  if (c->queue.empty() && !c->write_shut) {
    shutdown_write(c->fd);
    c->write_shut = true;
  }
  mark_dirty(id, c);
  if (c->peer_ended && c->write_shut) {
    release(id, c, 0);
    return;
  }
  idle_.remove(id.slot);
  deadlines_.set(id.slot, deadline_after(ms));
}

}  // namespace reactor
