#include "datagram.h"

#include <algorithm>
#include <cstring>

#ifndef _WIN32
#include <net/if.h>
#endif

namespace reactor {
namespace {

#ifdef _WIN32
#ifndef SIO_UDP_CONNRESET
#define SIO_UDP_CONNRESET _WSAIOW(IOC_VENDOR, 12)
#endif

// Winsock reports an ICMP port unreachable as a reset, on any UDP socket:
// off while the socket is unconnected (one refused sendto would otherwise
// fail the next receive from everyone else), on while it is connected.
int report_refusals(int fd, bool enable) {
  BOOL value = enable ? TRUE : FALSE;
  DWORD ignored = 0;
  return WSAIoctl(native_socket(fd), SIO_UDP_CONNRESET, &value, sizeof value, nullptr, 0, &ignored,
                  nullptr, nullptr) == 0
             ? 0
             : -socket_error();
}

// ... and names it WSAECONNRESET, which to_errno() maps to ECONNRESET: for
// a datagram socket it is the peer's refusal, as POSIX names it.
int datagram_error(int error) { return error == ECONNRESET ? ECONNREFUSED : error; }
#endif

#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL | MSG_DONTWAIT;  // EPIPE after shutdown, not SIGPIPE
#elif defined(_WIN32)
constexpr int kSendFlags = 0;  // the socket is non-blocking
#else
constexpr int kSendFlags = MSG_DONTWAIT;
#endif

// An interface index: a number, or (POSIX) an interface name. 0 if neither.
uint32_t interface_index(const std::string& zone) {
  if (zone.empty()) return 0;
  if (std::all_of(zone.begin(), zone.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (zone.size() > 9) return 0;
    return static_cast<uint32_t>(std::stoul(zone));
  }
#ifdef _WIN32
  return 0;  // names would need iphlpapi; indexes do
#else
  return if_nametoindex(zone.c_str());
#endif
}

// parse_ip() with an optional IPv6 zone: "fe80::1%eth0", "ff02::1%2".
int parse_zoned(const std::string& host, int port, Endpoint* out) {
  size_t percent = host.find('%');
  if (percent == std::string::npos) return parse_ip(host, port, out);
  int rc = parse_ip(host.substr(0, percent), port, out);
  if (rc < 0) return rc;
  uint32_t index = interface_index(host.substr(percent + 1));
  if (out->family() != AF_INET6 || index == 0) return -EINVAL;
  reinterpret_cast<sockaddr_in6*>(&out->storage)->sin6_scope_id = index;
  return 0;
}

const in_addr& ipv4_of(const Endpoint& endpoint) {
  return reinterpret_cast<const sockaddr_in*>(&endpoint.storage)->sin_addr;
}

const sockaddr_in6& ipv6_of(const Endpoint& endpoint) {
  return *reinterpret_cast<const sockaddr_in6*>(&endpoint.storage);
}

bool is_multicast(const Endpoint& endpoint) {
  if (endpoint.family() == AF_INET) return (ntohl(ipv4_of(endpoint).s_addr) >> 28) == 0xe;
  return ipv6_of(endpoint).sin6_addr.s6_addr[0] == 0xff;
}

// The interface a multicast option names for a group of `family`: an IPv4
// address (INADDR_ANY when empty), or an IPv6 address whose zone is the
// interface (index 0 when empty).
int parse_interface(int family, const std::string& interface_address, Endpoint* out) {
  if (interface_address.empty()) {
    out->storage.ss_family = static_cast<decltype(out->storage.ss_family)>(family);
    return 0;
  }
  int rc = parse_zoned(interface_address, 0, out);
  if (rc < 0) return rc;
  return out->family() == family ? 0 : -EINVAL;
}

int local_endpoint(int fd, Endpoint* out) {
  out->length = sizeof out->storage;
  auto* addr = reinterpret_cast<sockaddr*>(&out->storage);
  if (getsockname(native_socket(fd), addr, &out->length) != 0) return -socket_error();
  return 0;
}

int socket_family(int fd) {
  Endpoint local;
  int rc = local_endpoint(fd, &local);
  if (rc < 0) return rc;
  if (local.family() != AF_INET && local.family() != AF_INET6) return -EAFNOSUPPORT;
  return local.family();
}

// An option with one value per family, chosen by the socket's.
int set_family_flag(int fd, int ipv4_name, int ipv6_name, int value) {
  int family = socket_family(fd);
  if (family < 0) return family;
  return family == AF_INET ? set_flag(fd, IPPROTO_IP, ipv4_name, value)
                           : set_flag(fd, IPPROTO_IPV6, ipv6_name, value);
}

int port_of(const Endpoint& endpoint) {
  return ntohs(endpoint.family() == AF_INET
                   ? reinterpret_cast<const sockaddr_in*>(&endpoint.storage)->sin_port
                   : ipv6_of(endpoint).sin6_port);
}

void pack(const sockaddr_storage& source, socklen_t length, PackedAddress* out) {
  *out = PackedAddress{};
  if (source.ss_family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(&source);
    out->family = 4;
    out->port = ntohs(v4->sin_port);
    std::memcpy(out->address, &v4->sin_addr, 4);
  } else if (source.ss_family == AF_INET6 &&
             length >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(&source);
    out->family = 6;
    out->port = ntohs(v6->sin6_port);
    out->scope_id = v6->sin6_scope_id;
    std::memcpy(out->address, &v6->sin6_addr, 16);
  }
}

ssize_t send_one(int fd, const OutgoingDatagram& datagram) {
  const sockaddr* to = datagram.to ? datagram.to->addr() : nullptr;
  socklen_t to_length = datagram.to ? datagram.to->length : 0;
#ifdef _WIN32
  if (datagram.length > INT_MAX) return -EMSGSIZE;
  int n = ::sendto(native_socket(fd), static_cast<const char*>(datagram.data),
                   static_cast<int>(datagram.length), kSendFlags, to, to_length);
  return n < 0 ? -datagram_error(socket_error()) : n;
#else
  ssize_t n;
  do {
    n = ::sendto(fd, datagram.data, datagram.length, kSendFlags, to, to_length);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
#endif
}

}  // namespace

void set_port(Endpoint* endpoint, int port) {
  uint16_t network = htons(static_cast<uint16_t>(port));
  if (endpoint->family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&endpoint->storage)->sin_port = network;
  } else {
    reinterpret_cast<sockaddr_in6*>(&endpoint->storage)->sin6_port = network;
  }
}

int open_datagram(const std::string& host, int port, const DatagramOptions& options) {
  Endpoint endpoint;
  int rc = parse_zoned(host, port, &endpoint);
  if (rc < 0) return rc;
  if (options.receive_buffer < 0 || options.send_buffer < 0) return -EINVAL;
  int fd = new_socket(endpoint.family(), SOCK_DGRAM);
  if (fd < 0) return fd;
  if (options.reuse_address) {
#if defined(SO_REUSEPORT) && !defined(__linux__) && !defined(_WIN32)
    // BSD and macOS: SO_REUSEADDR lets sockets share a port only when they
    // bind the multicast address itself; SO_REUSEPORT (there: no balancing)
    // lets every receiver bind it, as Linux's SO_REUSEADDR does for UDP.
    rc = set_flag(fd, SOL_SOCKET, SO_REUSEPORT, 1);
#else
    rc = set_flag(fd, SOL_SOCKET, SO_REUSEADDR, 1);
#endif
    if (rc < 0) return fail(fd, rc);
  }
  if (options.reuse_port && (rc = set_reuse_port(fd)) < 0) return fail(fd, rc);
  if (endpoint.family() == AF_INET6 &&
      (rc = set_flag(fd, IPPROTO_IPV6, IPV6_V6ONLY, options.ipv6_only ? 1 : 0)) < 0) {
    return fail(fd, rc);
  }
  if (options.receive_buffer > 0 &&
      (rc = set_flag(fd, SOL_SOCKET, SO_RCVBUF, options.receive_buffer)) < 0) {
    return fail(fd, rc);
  }
  if (options.send_buffer > 0 &&
      (rc = set_flag(fd, SOL_SOCKET, SO_SNDBUF, options.send_buffer)) < 0) {
    return fail(fd, rc);
  }
#ifdef _WIN32
  if ((rc = report_refusals(fd, false)) < 0) return fail(fd, rc);
#endif
  if (::bind(native_socket(fd), endpoint.addr(), endpoint.length) != 0) {
    return fail(fd, -socket_error());
  }
  return fd;
}

int datagram_endpoint(SocketAddress::Family socket_family, const std::string& host, int port,
                      Endpoint* out) {
  if (socket_family != SocketAddress::kIPv4 && socket_family != SocketAddress::kIPv6) {
    return -EAFNOSUPPORT;
  }
  int rc = parse_zoned(host, port, out);
  if (rc < 0) return rc;
  if (out->family() == AF_INET6) return socket_family == SocketAddress::kIPv6 ? 0 : -EAFNOSUPPORT;
  if (socket_family == SocketAddress::kIPv4) return 0;
  // The dual stack takes IPv4 as ::ffff:a.b.c.d (Linux would take the IPv4
  // address itself; macOS and Windows would not).
  in_addr ipv4 = ipv4_of(*out);
  *out = Endpoint{};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
  v6->sin6_family = AF_INET6;
  v6->sin6_port = htons(static_cast<uint16_t>(port));
  v6->sin6_addr.s6_addr[10] = v6->sin6_addr.s6_addr[11] = 0xff;
  std::memcpy(&v6->sin6_addr.s6_addr[12], &ipv4, 4);
  out->length = sizeof(sockaddr_in6);
  return 0;
}

int format_address(const PackedAddress& address, SocketAddress* out) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.family == 4) {
    inet_ntop(AF_INET, address.address, text, sizeof text);
    *out = {SocketAddress::kIPv4, text, address.port};
    return 0;
  }
  if (address.family != 6) return -EAFNOSUPPORT;
  inet_ntop(AF_INET6, address.address, text, sizeof text);
  std::string host = text;
  if (address.scope_id != 0) {
#ifdef _WIN32
    host += "%" + std::to_string(address.scope_id);
#else
    char name[IF_NAMESIZE] = {};
    host += "%";
    host += if_indextoname(address.scope_id, name) ? name : std::to_string(address.scope_id);
#endif
  }
  *out = {SocketAddress::kIPv6, host, address.port};
  return 0;
}

DatagramReceiver::DatagramReceiver(int capacity, size_t max_size, BatchMode mode)
    : capacity_(std::max(capacity, 1)),
      max_size_(std::max<size_t>(max_size, 1)),
      mode_(mode),
      sources_(static_cast<size_t>(capacity_)),
      received_(static_cast<size_t>(capacity_)) {
#ifdef __linux__
  headers_.resize(static_cast<size_t>(capacity_));
  buffers_.resize(static_cast<size_t>(capacity_));
#endif
}

int DatagramReceiver::receive(int fd, uint8_t* into, size_t room) {
  bytes_ = 0;
  stopped_by_ = 0;
  if (room < max_size_) return -ENOBUFS;
#ifdef __linux__
  if (mode_ == BatchMode::kBestAvailable) return receive_batch(fd, into, room);
#endif
  return receive_each(fd, into, room);
}

#ifdef __linux__
int DatagramReceiver::receive_batch(int fd, uint8_t* into, size_t room) {
  size_t slots = std::min(static_cast<size_t>(capacity_), room / max_size_);
  for (size_t i = 0; i < slots; i++) {
    buffers_[i] = {into + i * max_size_, max_size_};
    msghdr& header = headers_[i].msg_hdr;
    header = msghdr{};
    header.msg_name = &sources_[i];
    header.msg_namelen = sizeof sources_[i];
    header.msg_iov = &buffers_[i];
    header.msg_iovlen = 1;
  }
  int n;
  do {
    n = ::recvmmsg(fd, headers_.data(), static_cast<unsigned>(slots), 0, nullptr);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  // Each datagram landed at the start of its own max_size slot: close the
  // gaps, so the slab is used only as far as the bytes go.
  for (int i = 0; i < n; i++) {
    const mmsghdr& message = headers_[static_cast<size_t>(i)];
    ReceivedDatagram& datagram = received_[static_cast<size_t>(i)];
    datagram.offset = bytes_;
    datagram.length = message.msg_len;
    datagram.truncated = (message.msg_hdr.msg_flags & MSG_TRUNC) != 0;
    pack(sources_[static_cast<size_t>(i)], message.msg_hdr.msg_namelen, &datagram.source);
    uint8_t* landed = into + static_cast<size_t>(i) * max_size_;
    if (landed != into + bytes_) std::memmove(into + bytes_, landed, datagram.length);
    bytes_ += datagram.length;
  }
  return n;
}
#endif

int DatagramReceiver::receive_each(int fd, uint8_t* into, size_t room) {
  int count = 0;
  while (count < capacity_ && room - bytes_ >= max_size_) {
    sockaddr_storage& source = sources_[static_cast<size_t>(count)];
    socklen_t source_length = sizeof source;
    bool truncated = false;
#ifdef _WIN32
    int n = ::recvfrom(native_socket(fd), reinterpret_cast<char*>(into + bytes_),
                       static_cast<int>(std::min<size_t>(max_size_, INT_MAX)), 0,
                       reinterpret_cast<sockaddr*>(&source), &source_length);
    int error = n < 0 ? datagram_error(socket_error()) : 0;
    if (error == EMSGSIZE) {  // Winsock's truncation: the buffer was filled
      n = static_cast<int>(std::min<size_t>(max_size_, INT_MAX));
      truncated = true;
      error = 0;
    }
#else
    iovec buffer{into + bytes_, max_size_};
    msghdr header{};
    header.msg_name = &source;
    header.msg_namelen = source_length;
    header.msg_iov = &buffer;
    header.msg_iovlen = 1;
    ssize_t n;
    do {
      n = ::recvmsg(fd, &header, 0);
    } while (n < 0 && errno == EINTR);
    int error = n < 0 ? errno : 0;
    truncated = (header.msg_flags & MSG_TRUNC) != 0;
    source_length = header.msg_namelen;
#endif
    if (error) {
      if (count == 0) return -error;
      // Read once, the kernel's report of this error is now ours to pass on.
      if (error != EAGAIN && error != EWOULDBLOCK) stopped_by_ = -error;
      break;
    }
    ReceivedDatagram& datagram = received_[static_cast<size_t>(count)];
    datagram.offset = bytes_;
    datagram.length = static_cast<size_t>(n);
    datagram.truncated = truncated;
    pack(source, source_length, &datagram.source);
    bytes_ += datagram.length;
    count++;
  }
  return count;
}

ssize_t send_datagram(int fd, const void* data, size_t length, const Endpoint* to) {
  return send_one(fd, OutgoingDatagram{data, length, to});
}

int send_datagrams(int fd, const OutgoingDatagram* list, int count, int* stopped_by,
                   BatchMode mode) {
  *stopped_by = 0;
  if (count < 0) return -EINVAL;
  int sent = 0;
#ifdef __linux__
  if (mode == BatchMode::kBestAvailable) {
    // sendmmsg stops early without saying why when a later datagram fails:
    // the next call, starting with that one, says it.
    constexpr int kChunk = 64;
    mmsghdr headers[kChunk];
    iovec buffers[kChunk];
    while (sent < count) {
      int chunk = std::min(count - sent, kChunk);
      for (int i = 0; i < chunk; i++) {
        const OutgoingDatagram& datagram = list[sent + i];
        buffers[i] = {const_cast<void*>(datagram.data), datagram.length};
        headers[i] = mmsghdr{};
        msghdr& header = headers[i].msg_hdr;
        if (datagram.to) {
          header.msg_name = const_cast<sockaddr*>(datagram.to->addr());
          header.msg_namelen = datagram.to->length;
        }
        header.msg_iov = &buffers[i];
        header.msg_iovlen = 1;
      }
      int n;
      do {
        n = ::sendmmsg(fd, headers, static_cast<unsigned>(chunk), kSendFlags);
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        *stopped_by = -errno;
        break;
      }
      sent += n;
    }
    return sent;
  }
#endif
  for (; sent < count; sent++) {
    ssize_t n = send_one(fd, list[sent]);
    if (n < 0) {
      *stopped_by = static_cast<int>(n);
      break;
    }
  }
  return sent;
}

int connect_datagram(int fd, const Endpoint& to) {
  if (::connect(native_socket(fd), to.addr(), to.length) != 0) return -socket_error();
#ifdef _WIN32
  return report_refusals(fd, true);
#else
  return 0;
#endif
}

int disconnect_datagram(int fd) {
  Endpoint connected_from;
  int rc = local_endpoint(fd, &connected_from);
  if (rc < 0) return rc;
  sockaddr_storage none{};
  none.ss_family = AF_UNSPEC;
  if (::connect(native_socket(fd), reinterpret_cast<const sockaddr*>(&none), sizeof(sockaddr)) !=
      0) {
    int error = socket_error();
    // macOS and the BSDs dissolve the association and still fail, as libuv
    // notes: EAFNOSUPPORT, or EINVAL.
    if (error != EAFNOSUPPORT && error != EINVAL) return -error;
  }
  // Linux lets go of a port that was bound as port 0 (the kernel's choice)
  // when the socket disconnects, and the next send would pick another: the
  // socket is bound again to its port (and to the address it was bound to,
  // which the disconnect restored).
  Endpoint bound;
  if ((rc = local_endpoint(fd, &bound)) < 0) return rc;
  if (port_of(bound) == 0 && port_of(connected_from) != 0) {
    set_port(&bound, port_of(connected_from));
    if (::bind(native_socket(fd), bound.addr(), bound.length) != 0) return -socket_error();
  }
#ifdef _WIN32
  return report_refusals(fd, false);
#else
  return 0;
#endif
}

int set_broadcast(int fd, bool enable) { return set_flag(fd, SOL_SOCKET, SO_BROADCAST, enable); }

int set_ttl(int fd, int ttl) {
  if (ttl < 1 || ttl > 255) return -EINVAL;
  return set_family_flag(fd, IP_TTL, IPV6_UNICAST_HOPS, ttl);
}

int set_multicast_ttl(int fd, int ttl) {
  if (ttl < 0 || ttl > 255) return -EINVAL;
  return set_family_flag(fd, IP_MULTICAST_TTL, IPV6_MULTICAST_HOPS, ttl);
}

int set_multicast_loopback(int fd, bool enable) {
  return set_family_flag(fd, IP_MULTICAST_LOOP, IPV6_MULTICAST_LOOP, enable);
}

int set_multicast_interface(int fd, const std::string& interface_address) {
  int family = socket_family(fd);
  if (family < 0) return family;
  Endpoint interface;
  int rc = parse_zoned(interface_address, 0, &interface);
  if (rc < 0) return rc;
  if (interface.family() == AF_INET) {
    return set_option(fd, IPPROTO_IP, IP_MULTICAST_IF, &ipv4_of(interface), sizeof(in_addr));
  }
  if (family != AF_INET6) return -EINVAL;
  unsigned index = ipv6_of(interface).sin6_scope_id;
  return set_option(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, sizeof index);
}

int set_membership(int fd, const std::string& group, const std::string& interface_address,
                   bool join) {
  Endpoint group_endpoint, interface;
  int rc = parse_ip(group, 0, &group_endpoint);
  if (rc < 0) return rc;
  if (!is_multicast(group_endpoint)) return -EINVAL;
  if ((rc = parse_interface(group_endpoint.family(), interface_address, &interface)) < 0) {
    return rc;
  }
  if (group_endpoint.family() == AF_INET) {
    ip_mreq request{};
    request.imr_multiaddr = ipv4_of(group_endpoint);
    request.imr_interface = ipv4_of(interface);
    return set_option(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &request,
                      sizeof request);
  }
  ipv6_mreq request{};
  request.ipv6mr_multiaddr = ipv6_of(group_endpoint).sin6_addr;
  request.ipv6mr_interface = ipv6_of(interface).sin6_scope_id;
  return set_option(fd, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &request,
                    sizeof request);
}

int set_source_membership(int fd, const std::string& source, const std::string& group,
                          const std::string& interface_address, bool join) {
  Endpoint source_endpoint, group_endpoint, interface;
  int rc = parse_ip(group, 0, &group_endpoint);
  if (rc < 0) return rc;
  if (!is_multicast(group_endpoint)) return -EINVAL;
  if ((rc = parse_ip(source, 0, &source_endpoint)) < 0) return rc;
  if (source_endpoint.family() != group_endpoint.family()) return -EINVAL;
  if ((rc = parse_interface(group_endpoint.family(), interface_address, &interface)) < 0) {
    return rc;
  }
  if (group_endpoint.family() == AF_INET) {
    ip_mreq_source request{};
    request.imr_multiaddr = ipv4_of(group_endpoint);
    request.imr_sourceaddr = ipv4_of(source_endpoint);
    request.imr_interface = ipv4_of(interface);
    return set_option(fd, IPPROTO_IP, join ? IP_ADD_SOURCE_MEMBERSHIP : IP_DROP_SOURCE_MEMBERSHIP,
                      &request, sizeof request);
  }
  group_source_req request{};
  request.gsr_interface = ipv6_of(interface).sin6_scope_id;
  std::memcpy(&request.gsr_group, &group_endpoint.storage, sizeof(sockaddr_in6));
  std::memcpy(&request.gsr_source, &source_endpoint.storage, sizeof(sockaddr_in6));
  return set_option(fd, IPPROTO_IPV6, join ? MCAST_JOIN_SOURCE_GROUP : MCAST_LEAVE_SOURCE_GROUP,
                    &request, sizeof request);
}

}  // namespace reactor
