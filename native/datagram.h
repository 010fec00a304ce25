// UDP below the loop: opening a socket, receiving a batch of datagrams into
// caller memory with one system call, sending one or a batch, the connected
// mode, and the options (broadcast, TTLs, multicast). No loop and no Node:
// the loop's UDP handle calls these when its socket is readable or writable.
// Every function returns a count, a length or 0 on success and -errno on
// failure; hosts are numeric, as for TCP (sockets.h).
//
// Sending when the kernel has no room (-EAGAIN from a full send buffer;
// -ENOBUFS where an interface queue is full, as BSD and macOS report it):
// UDP promises no delivery, but a burst from JavaScript should not be lost to
// a momentary full buffer either. What we recommend for the loop: keep a
// small bounded queue per socket (say 64 datagrams or 256 KiB, whichever
// comes first), flushed with send_datagrams() when the socket turns
// writable; past the bound, drop the datagram, count it (stats) and tell the
// sender it was not sent (ENOBUFS), never grow without limit as libuv does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "platform.h"
#include "sockets.h"

namespace reactor {

struct DatagramOptions {
  bool reuse_port = false;     // SO_REUSEPORT: sockets share the port, the kernel balancing
  bool reuse_address = false;  // several receivers of one multicast group on one port
  bool ipv6_only = false;      // "::" takes IPv6 only instead of both families
  int receive_buffer = 0;      // SO_RCVBUF when > 0
  int send_buffer = 0;         // SO_SNDBUF when > 0
};

// A UDP socket bound to host:port (port 0: the system picks), non-blocking
// and close-on-exec. host is an IPv4 or IPv6 literal; an IPv6 one may name
// its zone ("fe80::1%eth0", or "%2" by index; names are POSIX only). The fd,
// or -errno (-EINVAL for a bad host, port or buffer size).
int open_datagram(const std::string& host, int port, const DatagramOptions& options);

// Where a datagram goes, for a socket of `socket_family` (its local
// address's, from socket_address()): host as for open_datagram. An IPv4
// address for an IPv6 socket is sent IPv4-mapped (its dual stack). -EINVAL
// for a bad host or port, -EAFNOSUPPORT for an IPv6 address on an IPv4 socket.
int datagram_endpoint(SocketAddress::Family socket_family, const std::string& host, int port,
                      Endpoint* out);

// Sets the port of an endpoint datagram_endpoint() made (sin_port or
// sin6_port, in network order).
void set_port(Endpoint* endpoint, int port);

// A datagram's source in a fixed form the loop can copy into memory shared
// with JavaScript as it is: 24 bytes, no padding.
struct PackedAddress {
  uint16_t family = 0;       // 4 or 6; 0 when the sender is unnamed
  uint16_t port = 0;         // host order
  uint32_t scope_id = 0;     // the interface of an IPv6 link-local source, else 0
  uint8_t address[16] = {};  // network order; IPv4 in the first 4 bytes
};
static_assert(sizeof(PackedAddress) == 24, "PackedAddress is shared as 24 bytes");

// Numeric host (a zone appended as Node prints it, "fe80::1%eth0"), port and
// family; -EAFNOSUPPORT for an unnamed sender.
int format_address(const PackedAddress& address, SocketAddress* out);

// How batches reach the kernel: one recvmmsg/sendmmsg call where the system
// has them (Linux), else one call per datagram. kOnePerDatagram takes the
// second way everywhere (tests, benchmarks).
enum class BatchMode { kBestAvailable, kOnePerDatagram };

struct ReceivedDatagram {
  size_t offset = 0;       // in the memory given to receive()
  size_t length = 0;       // bytes stored there (0 for an empty datagram)
  bool truncated = false;  // longer than max_size: the rest was dropped by the kernel
  PackedAddress source;
};

// Receives up to `capacity` datagrams of up to `max_size` bytes each per call
// into memory the caller owns (the loop's read slab); both are at least 1.
// Reused across calls and sockets: it holds only the kernel's scratch
// (headers, address buffers) and the last batch's descriptions.
class DatagramReceiver {
 public:
  DatagramReceiver(int capacity, size_t max_size, BatchMode mode = BatchMode::kBestAvailable);

  // One recvmmsg (or up to `capacity` recvmsg/recvfrom calls) into `into`:
  // the datagrams are left back to back from into[0], in arrival order, so
  // bytes() of `room` are used. Each is read with max_size bytes free: one
  // recvmmsg reserves them for every datagram it asks for, so it takes at
  // most room / max_size; one call each needs them only after the datagrams
  // before, so small ones fit more. Returns how many were received
  // (datagram(i) describes each), or -errno when none was: -EAGAIN when none
  // waits, -ENOBUFS when room < max_size, or an error the socket holds
  // (-ECONNREFUSED on a connected socket whose peer refused an earlier
  // datagram). Read again for more.
  int receive(int fd, uint8_t* into, size_t room);

  const ReceivedDatagram& datagram(int i) const { return received_[static_cast<size_t>(i)]; }
  size_t bytes() const { return bytes_; }
  // The -errno that ended the last batch after the datagrams it returned, when
  // it was consumed reading them (one call per datagram: the kernel reports a
  // socket error once); 0 otherwise. The loop reports it after delivering the
  // datagrams, as the next receive() would have. recvmmsg keeps such an
  // error for the next call itself.
  int stopped_by() const { return stopped_by_; }

  int capacity() const { return capacity_; }
  size_t max_size() const { return max_size_; }

 private:
  int receive_each(int fd, uint8_t* into, size_t room);
#ifdef __linux__
  int receive_batch(int fd, uint8_t* into, size_t room);
  std::vector<mmsghdr> headers_;
  std::vector<iovec> buffers_;
#endif
  int capacity_;
  size_t max_size_;
  [[maybe_unused]] BatchMode mode_;  // only Linux has a choice
  std::vector<sockaddr_storage> sources_;
  std::vector<ReceivedDatagram> received_;
  size_t bytes_ = 0;
  int stopped_by_ = 0;
};

// One datagram to `to`, or on a connected socket (to == nullptr) to its
// peer. Its length, or -errno: -EAGAIN / -ENOBUFS when the kernel has no
// room now (see the top of this file), -EMSGSIZE when it is too long,
// -ECONNREFUSED on a connected socket whose peer refused an earlier one.
ssize_t send_datagram(int fd, const void* data, size_t length, const Endpoint* to);

struct OutgoingDatagram {
  const void* data = nullptr;
  size_t length = 0;
  const Endpoint* to = nullptr;  // nullptr on a connected socket
};

// Sends list[0..count) in order until all went or one fails: with sendmmsg
// (as many calls as the kernel needs) or one call each. Returns how many went;
// when that is fewer than count, *stopped_by is the -errno of the first that
// did not (else 0). -EINVAL for a negative count.
int send_datagrams(int fd, const OutgoingDatagram* list, int count, int* stopped_by,
                   BatchMode mode = BatchMode::kBestAvailable);

// The connected mode: only `to` may send to this socket, send_datagram()
// may omit the address, and an ICMP refusal from the peer comes back as
// -ECONNREFUSED from the next receive or send. disconnect_datagram() ends it
// and keeps the local address (Linux would drop a port the system chose).
int connect_datagram(int fd, const Endpoint& to);
int disconnect_datagram(int fd);

// Options. The TTLs and the multicast ones follow the socket's family (the
// IPv6 options on an IPv6 socket, as libuv and Node set them).
int set_broadcast(int fd, bool enable);
int set_ttl(int fd, int ttl);            // 1-255, else -EINVAL
int set_multicast_ttl(int fd, int ttl);  // 0-255, else -EINVAL
int set_multicast_loopback(int fd, bool enable);
// Where multicast leaves: an IPv4 interface address on an IPv4 socket; on an
// IPv6 one an address with the interface as its zone ("::%eth0", "::%2").
int set_multicast_interface(int fd, const std::string& interface_address);
// Joins (join) or leaves a multicast group, on the interface named as above
// ("" lets the system choose). -EINVAL when group is not a multicast address
// or interface is malformed; the system's error for a group joined twice
// or left unjoined (Linux: -EADDRINUSE, -EADDRNOTAVAIL).
int set_membership(int fd, const std::string& group, const std::string& interface_address,
                   bool join);
// The same for source-specific multicast: only datagrams from `source`.
int set_source_membership(int fd, const std::string& source, const std::string& group,
                          const std::string& interface_address, bool join);

}  // namespace reactor
