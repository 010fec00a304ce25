// UDP sockets in the loop: the part of the core's public face (Loop::udp())
// the binding and the native tests use for them. A UDP socket is a handle of
// the loop's table like a listener: readable → one batch of datagrams
// received (recvmmsg where the system has it) into the read slab, one
// kDatagram record each; sends go out at once, or, made while JavaScript
// handles a batch, together with one sendmmsg when it returns. Errors of a
// datagram (an ICMP refusal on a connected socket, a send that failed) never
// close the socket: they are kDatagramError records. The work is done in
// udp.cc; the syscalls are datagram.h's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "datagram.h"

namespace reactor {

class LoopCore;

// kDatagramError's b: which side of the socket failed.
enum UdpOperation : int32_t {
  kUdpReceive = 0,
  kUdpSend = 1,
};

// What UdpSockets::send() did with a datagram (-errno instead when the call
// itself was wrong: a bad or unreachable-by-family host, not connected...).
enum UdpSendResult : int {
  kUdpSent = 0,     // the kernel took it
  kUdpQueued = 1,   // kept, in order, for the end of the batch or writability
  kUdpDropped = 2,  // the queue is full: not sent (counted as dropped)
  kUdpFailed = 3,   // the kernel refused it: not sent, reported as a kDatagramError record
};

enum class UdpOption { kBroadcast, kTtl, kMulticastTtl, kMulticastLoopback };

// Per socket, kept as events happen.
struct UdpCounters {
  uint64_t received = 0;  // datagrams delivered
  uint64_t received_bytes = 0;
  uint64_t sent = 0;  // datagrams the kernel took
  uint64_t sent_bytes = 0;
  uint64_t dropped = 0;  // sends refused for want of queue room
  uint64_t errors = 0;   // failed sends and receive errors, reported or not
};

class UdpSockets {
 public:
  explicit UdpSockets(LoopCore* core) : core_(core) {}

  // A socket bound to host:port (numeric host), read from now on. Its packed
  // Id, or -errno.
  int64_t open(const std::string& host, int port, const DatagramOptions& options);
  // To host:port, or with an empty host to the connected peer (-EDESTADDRREQ
  // when not connected). `batch`: JavaScript is handling a batch; the
  // datagram is queued and goes out with the others once it returns. A
  // UdpSendResult, or -errno (-EINVAL, -EAFNOSUPPORT for the host, -EBADF).
  int send(uint64_t id, const void* data, size_t length, const std::string& host, int port,
           bool batch);
  int connect(uint64_t id, const std::string& host, int port);
  int disconnect(uint64_t id);
  // Pause (false) or resume (true) receiving; applied before the next wait.
  int set_reading(uint64_t id, bool reading);
  int set_option(uint64_t id, UdpOption option, int value);
  int set_multicast_interface(uint64_t id, const std::string& interface_address);
  int set_membership(uint64_t id, const std::string& group, const std::string& interface_address,
                     bool join);
  int set_source_membership(uint64_t id, const std::string& source, const std::string& group,
                            const std::string& interface_address, bool join);
  int counters(uint64_t id, UdpCounters* out);
  // Sends what is queued if the kernel takes it now, then closes.
  int close(uint64_t id);

 private:
  LoopCore* core_;
};

}  // namespace reactor
