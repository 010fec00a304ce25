// Per-listener admission: the connection cap with its FIFO of parked
// connections, the per-peer cap, the overflow policy and the defaults each
// accepted connection starts with. The loop does the syscalls; this holds the
// state and answers "serve, park or reject?".
#pragma once

#include <cstdint>
#include <cstring>
#include <deque>
#include <string>
#include <unordered_map>

#include "conn_limits.h"
#include "slot_table.h"

namespace reactor {

// What every new connection starts with; listeners hand theirs to the
// connections they accept.
struct ConnDefaults {
  uint32_t idle_ms = 0;  // 0: no idle timeout
  bool idle_resets_on_write = false;
  ConnLimits limits;
};

enum class Overflow : uint8_t { kClose, kReset };

struct AdmissionPolicy {
  uint32_t max_connections = UINT32_MAX;
  // Over the cap, stop accepting and leave new connections in the kernel's
  // backlog (no descriptor spent on them, no queue limit, timeout or
  // abandonment check) instead of parking them.
  bool wait_in_backlog = false;
  uint32_t max_per_peer = UINT32_MAX;
  uint32_t queue_limit = 1024;
  uint32_t queue_timeout_ms = 0;  // 0: wait forever
  Overflow overflow = Overflow::kClose;
  std::string overflow_bytes;  // sent before the graceful close of a rejected connection
  // Every connection starts with a PROXY protocol header (v1 or v2): it is
  // read and taken off first, and only then is the connection admitted, so
  // the per-peer cap counts the client the header names.
  bool proxy_protocol = false;
  uint32_t proxy_header_timeout_ms = 5000;  // the header not complete by then: closed
};

// A peer's address without its port: 16 bytes, IPv4 as IPv4-mapped IPv6.
struct PeerKey {
  uint8_t bytes[16] = {};
  bool operator==(const PeerKey& other) const { return std::memcmp(bytes, other.bytes, 16) == 0; }
};

struct PeerKeyHash {
  size_t operator()(const PeerKey& key) const {
    uint64_t a, b;
    std::memcpy(&a, key.bytes, 8);
    std::memcpy(&b, key.bytes + 8, 8);
    return static_cast<size_t>(a * 0x9E3779B97F4A7C15ull ^ b);
  }
};

struct Admission {
  AdmissionPolicy policy;
  ConnDefaults defaults;

  uint32_t open = 0;    // served and not yet closed
  uint32_t queued = 0;  // parked now
  // Parked connections, oldest first. Entries of connections that left the
  // queue early (abandoned, timed out) stay until they reach the front or
  // the deque is compacted.
  std::deque<Id> parked;
  std::unordered_map<PeerKey, uint32_t, PeerKeyHash> per_peer;  // served + parked
  std::unordered_map<uint32_t, PeerKey> peer_of;                // connection slot -> peer

  bool limits_peers() const { return policy.max_per_peer != UINT32_MAX; }
  bool has_room() const { return open < policy.max_connections && queued == 0; }
  bool holds_back() const { return policy.wait_in_backlog && open >= policy.max_connections; }
  bool can_park() const { return queued < policy.queue_limit; }
  bool peer_full(const PeerKey& key) const {
    auto it = per_peer.find(key);
    return it != per_peer.end() && it->second >= policy.max_per_peer;
  }

  void track_peer(uint32_t conn_slot, const PeerKey& key) {
    per_peer[key]++;
    peer_of[conn_slot] = key;
  }
  void forget_peer(uint32_t conn_slot) {
    auto it = peer_of.find(conn_slot);
    if (it == peer_of.end()) return;
    auto count = per_peer.find(it->second);
    if (count != per_peer.end() && --count->second == 0) per_peer.erase(count);
    peer_of.erase(it);
  }
};

}  // namespace reactor
