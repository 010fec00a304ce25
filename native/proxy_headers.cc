// Connections of a PROXY protocol listener before admission: the header is
// peeked at and parsed (proxy_protocol.h), and exactly its bytes are taken
// off the socket, so what follows stays in the kernel for the application —
// read as usual once admitted, whatever the backend, parked or not. A header
// that is missing, malformed, too large, late or cut short by the peer closes
// the connection, counted by reason; JavaScript never hears of it.
#include <cerrno>
#include <vector>

#include "loop_core.h"
#include "platform.h"

namespace reactor {
namespace {

// What one peek looks at: a v1 header at once, a v2 one with its addresses
// and the usual TLVs; larger ones take several.
constexpr size_t kPeekSize = 512;

}  // namespace

void LoopCore::await_proxy_header(Id id, Handle* c, const AdmissionPolicy& policy) {
  c->state = State::kAwaitingHeader;
  proxy_parsers_.insert_or_assign(id.slot, proxy::Parser());
  if (policy.proxy_header_timeout_ms > 0) {
    deadlines_.set(id.slot, deadline_after(policy.proxy_header_timeout_ms));
  }
  mark_dirty(id, c);
}

void LoopCore::on_proxy_header_ready(Id id, Handle* c) {
  auto found = proxy_parsers_.find(id.slot);
  if (found == proxy_parsers_.end()) {  // every connection in this state has one
    forget(id, c);
    return;
  }
  proxy::Parser& parser = found->second;
  uint8_t peeked[kPeekSize];
  for (;;) {
    ssize_t n = socket_recv(c->fd, peeked, sizeof peeked, true);
    if (n < 0 && would_block(static_cast<int>(-n))) return;
    if (n <= 0) {
      proxy_header_failed(id, c, &Stats::proxy_abandoned);
      return;
    }
    size_t consumed = 0;
    proxy::Status status = parser.feed(peeked, static_cast<size_t>(n), &consumed);
    if (status == proxy::Status::kRejected) {
      switch (parser.reason()) {
        case proxy::Reject::kMissing:
          proxy_header_failed(id, c, &Stats::proxy_missing);
          return;
        case proxy::Reject::kTooLarge:
          proxy_header_failed(id, c, &Stats::proxy_too_large);
          return;
        default:
          proxy_header_failed(id, c, &Stats::proxy_malformed);
          return;
      }
    }
    // The header's bytes leave the socket; they are there, just peeked at.
    ssize_t taken = socket_recv(c->fd, peeked, consumed);
    if (taken != static_cast<ssize_t>(consumed)) {
      proxy_header_failed(id, c, &Stats::proxy_abandoned);
      return;
    }
    stats_.bytes_in += consumed;
    if (status == proxy::Status::kDone) {
      proxy_header_done(id, c, parser.header());
      return;
    }
    if (static_cast<size_t>(n) < sizeof peeked) return;  // the rest has not come yet
  }
}

void LoopCore::proxy_header_done(Id id, Handle* c, const proxy::Header& header) {
  stats_.proxy_headers++;
  proxied_[id.slot] = header.proxied ? header.source : SocketAddress{};
  proxy_parsers_.erase(id.slot);  // header is the parser's: not used from here on
  deadlines_.clear(id.slot);
  c->state = State::kOpen;
  Admission* admission = admission_of(c->listener);
  if (!admission) {
    // Its listener closed meanwhile, as parked connections are then.
    reject(id, c, AdmissionPolicy{});
    return;
  }
  admit_adopted(id, c, c->listener, admission);
}

void LoopCore::proxy_header_failed(Id id, Handle* c, uint64_t Stats::*counter) {
  stats_.*counter += 1;
  forget(id, c);
}

void LoopCore::proxy_header_timed_out(Id id, Handle* c) {
  proxy_header_failed(id, c, &Stats::proxy_timeouts);
}

void LoopCore::drop_proxy_headers(Id listener) {
  std::vector<Id> awaiting;
  for (const auto& entry : proxy_parsers_) {
    Id id;
    if (!table_.live_at(entry.first, &id)) continue;
    Handle* c = table_.get(id);
    if (c->state == State::kAwaitingHeader && c->listener == listener) awaiting.push_back(id);
  }
  for (Id id : awaiting) {
    Handle* c = table_.get(id);
    c->state = State::kOpen;
    proxy_parsers_.erase(id.slot);
    reject(id, c, AdmissionPolicy{});
  }
}

void LoopCore::forget_proxy(Id id, const Handle* c) {
  if (c->state == State::kAwaitingHeader) proxy_parsers_.erase(id.slot);
  proxied_.erase(id.slot);
}

int LoopCore::proxy_address(uint64_t packed, SocketAddress* out) {
  Id id;
  Handle* c = find(packed, &id);
  if (!c || c->kind != Kind::kStream) return -EBADF;
  if (proxied_.find(id.slot) == proxied_.end()) return -ENOENT;
  return socket_address(c->fd, true, out);
}

}  // namespace reactor
