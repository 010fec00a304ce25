// A UDP socket's own state in the loop's table (the Handle's `record`), and the
// memory its datagrams are received into. Private to the core (udp.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>

#include "datagram.h"
#include "datagram_queue.h"
#include "kind_record.h"
#include "sockets.h"
#include "udp.h"

namespace reactor {

struct UdpSocket : KindRecord {
  SocketAddress::Family family = SocketAddress::kNone;  // of its local address
  bool connected = false;
  bool blocked = false;  // the kernel had no room: the queue waits for writability
  int error = 0;         // a failure to report in the next batch (kDatagramError)
  UdpOperation error_operation = kUdpReceive;
  DatagramQueue queue;
  UdpCounters counters;
  // The last destination host parsed: a server mostly replies to peers it
  // hears from, often many ports of a few hosts, so most sends name the host
  // of the one before and only the port changes.
  std::string last_host;
  Endpoint last_to;
};

// Where the loop receives a batch before copying it into the slab: one
// recvmmsg asks for kBatch datagrams of up to kMaxSize bytes each and needs
// that much room, which a read slab (1 MiB, partly used) seldom has; copied
// out back to back, a batch of small datagrams takes the slab only as far as
// their bytes go. kMaxSize is above the largest UDP payload (65,507 bytes
// over IPv4, 65,527 over IPv6), so nothing is truncated. The 4 MiB are
// address space: the system commits only the pages datagrams land on.
struct DatagramScratch {
  static constexpr int kBatch = 64;
  static constexpr size_t kMaxSize = 64 * 1024;
  static constexpr size_t kSize = kBatch * kMaxSize;

  DatagramReceiver receiver{kBatch, kMaxSize};
  std::unique_ptr<uint8_t[]> memory{new (std::nothrow) uint8_t[kSize]};
};

}  // namespace reactor
