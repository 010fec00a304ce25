// UDP below the loop (datagram.h): loopback sockets only, every wait bounded.
// The batch tests run both ways a batch can reach the kernel (recvmmsg /
// sendmmsg where the system has them, one call per datagram), so the
// fallback macOS and Windows take is tested here too. No poller involved.
#ifndef _WIN32
#include <net/if.h>
#include <poll.h>
#endif

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../datagram.h"
#include "../platform.h"
#include "../sockets.h"
#include "test_framework.h"
#include "test_sockets.h"

using namespace reactor;
using testing::readable_within;

namespace {

const BatchMode kModes[] = {BatchMode::kBestAvailable, BatchMode::kOnePerDatagram};

const char* mode_name(BatchMode mode) {
  return mode == BatchMode::kBestAvailable ? "best available" : "one per datagram";
}

// Closes its socket however the test ends.
struct Socket {
  int fd;
  explicit Socket(int fd) : fd(fd) {}
  ~Socket() {
    if (fd >= 0) close_socket(fd);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
};

int local_port(int fd) {
  SocketAddress address;
  return socket_address(fd, false, &address) == 0 ? address.port : -1;
}

SocketAddress::Family family_of(int fd) {
  SocketAddress address;
  return socket_address(fd, false, &address) == 0 ? address.family : SocketAddress::kNone;
}

// Where fd's own address is, as seen from `from` (loopback of fd's family).
Endpoint address_of(int from, int fd, const std::string& host) {
  Endpoint endpoint;
  datagram_endpoint(family_of(from), host, local_port(fd), &endpoint);
  return endpoint;
}

// Readable, or holding an error (an ICMP refusal), within timeout_ms.
bool ready_within(int fd, int timeout_ms) {
#ifdef _WIN32
  return readable_within(fd, timeout_ms);
#else
  pollfd p{fd, POLLIN, 0};
  int n;
  do {
    n = ::poll(&p, 1, timeout_ms);
  } while (n < 0 && errno == EINTR);
  return n == 1;
#endif
}

std::string bytes_of(const uint8_t* data, const ReceivedDatagram& datagram) {
  return std::string(reinterpret_cast<const char*>(data) + datagram.offset, datagram.length);
}

std::string text_of(const PackedAddress& address) {
  SocketAddress printable;
  return format_address(address, &printable) == 0 ? printable.address : "(unprintable)";
}

std::string pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++)
    s[i] = static_cast<char>((i * 31 + static_cast<size_t>(seed)) & 0xff);
  return s;
}

void round_trip(const char* host, uint16_t family) {
  Socket a(open_datagram(host, 0, {})), b(open_datagram(host, 0, {}));
  REQUIRE(a.fd >= 0 && b.fd >= 0);
  Endpoint to_b = address_of(a.fd, b.fd, host);
  std::string message = pattern(1200, 7);
  CHECK_EQ(send_datagram(a.fd, message.data(), message.size(), &to_b), 1200);
  REQUIRE(readable_within(b.fd, 2000));
  std::vector<uint8_t> slab(64 * 1024);
  DatagramReceiver receiver(8, 2048);
  REQUIRE(receiver.receive(b.fd, slab.data(), slab.size()) == 1);
  const ReceivedDatagram& got = receiver.datagram(0);
  CHECK_EQ(bytes_of(slab.data(), got), message);
  CHECK(!got.truncated);
  CHECK_EQ(got.source.family, family);
  CHECK_EQ(got.source.port, local_port(a.fd));
  CHECK_EQ(text_of(got.source), std::string(host));
  CHECK_EQ(receiver.bytes(), 1200u);
  // And back, to the address the datagram came from.
  SocketAddress source;
  REQUIRE(format_address(got.source, &source) == 0);
  Endpoint reply_to;
  REQUIRE(datagram_endpoint(family_of(b.fd), source.address, source.port, &reply_to) == 0);
  CHECK_EQ(send_datagram(b.fd, "pong", 4, &reply_to), 4);
  REQUIRE(readable_within(a.fd, 2000));
  REQUIRE(receiver.receive(a.fd, slab.data(), slab.size()) == 1);
  CHECK_EQ(bytes_of(slab.data(), receiver.datagram(0)), std::string("pong"));
  CHECK_EQ(receiver.receive(a.fd, slab.data(), slab.size()), -EAGAIN);
}

}  // namespace

TEST(datagram_round_trip_ipv4) { round_trip("127.0.0.1", 4); }

TEST(datagram_round_trip_ipv6) { round_trip("::1", 6); }

// "::" takes both families; IPv4 peers are seen, and reached, IPv4-mapped.
TEST(datagram_dual_stack_takes_ipv4) {
  Socket dual(open_datagram("::", 0, {})), v4(open_datagram("127.0.0.1", 0, {}));
  REQUIRE(dual.fd >= 0 && v4.fd >= 0);
  Endpoint to_dual = address_of(v4.fd, dual.fd, "127.0.0.1");
  CHECK_EQ(send_datagram(v4.fd, "hello", 5, &to_dual), 5);
  REQUIRE(readable_within(dual.fd, 2000));
  std::vector<uint8_t> slab(4096);
  DatagramReceiver receiver(4, 1024);
  REQUIRE(receiver.receive(dual.fd, slab.data(), slab.size()) == 1);
  CHECK_EQ(receiver.datagram(0).source.family, 6);
  CHECK_EQ(text_of(receiver.datagram(0).source), std::string("::ffff:127.0.0.1"));
  // An IPv4 destination for the IPv6 socket is mapped for it.
  Endpoint to_v4;
  REQUIRE(datagram_endpoint(SocketAddress::kIPv6, "127.0.0.1", local_port(v4.fd), &to_v4) == 0);
  CHECK_EQ(to_v4.family(), AF_INET6);
  CHECK_EQ(send_datagram(dual.fd, "back", 4, &to_v4), 4);
  REQUIRE(readable_within(v4.fd, 2000));
  REQUIRE(receiver.receive(v4.fd, slab.data(), slab.size()) == 1);
  CHECK_EQ(bytes_of(slab.data(), receiver.datagram(0)), std::string("back"));
  CHECK_EQ(receiver.datagram(0).source.family, 4);
  // ipv6Only refuses IPv4 peers.
  Socket v6_only(open_datagram("::", 0, DatagramOptions{false, false, true}));
  REQUIRE(v6_only.fd >= 0);
  Endpoint to_v6_only = address_of(v4.fd, v6_only.fd, "127.0.0.1");
  CHECK_EQ(send_datagram(v4.fd, "x", 1, &to_v6_only), 1);
  CHECK(!readable_within(v6_only.fd, 50));
}

// 64 datagrams of different lengths, then one receive() takes them all, in
// order, back to back in the slab.
TEST(datagram_batch_of_64_in_one_receive) {
  for (BatchMode mode : kModes) {
    Socket sender(open_datagram("127.0.0.1", 0, {})),
        receiver_socket(open_datagram("127.0.0.1", 0, {}));
    REQUIRE(sender.fd >= 0 && receiver_socket.fd >= 0);
    Endpoint to = address_of(sender.fd, receiver_socket.fd, "127.0.0.1");
    std::vector<std::string> sent;
    for (int i = 0; i < 64; i++) {
      sent.push_back(pattern(static_cast<size_t>(1 + i * 13), i));
      REQUIRE(send_datagram(sender.fd, sent.back().data(), sent.back().size(), &to) ==
              static_cast<ssize_t>(sent.back().size()));
    }
    REQUIRE(readable_within(receiver_socket.fd, 2000));
    std::vector<uint8_t> slab(64 * 1024);
    DatagramReceiver receiver(64, 1024, mode);
    int n = receiver.receive(receiver_socket.fd, slab.data(), slab.size());
    CHECK_MSG(n == 64, mode_name(mode) << ": received " << n);
    size_t offset = 0;
    for (int i = 0; i < n && i < 64; i++) {
      const ReceivedDatagram& got = receiver.datagram(i);
      CHECK_EQ(got.offset, offset);
      CHECK_EQ(got.length, sent[static_cast<size_t>(i)].size());
      CHECK_MSG(bytes_of(slab.data(), got) == sent[static_cast<size_t>(i)],
                mode_name(mode) << ": datagram " << i << " differs");
      CHECK(!got.truncated);
      CHECK_EQ(got.source.port, local_port(sender.fd));
      offset += got.length;
    }
    CHECK_EQ(receiver.bytes(), offset);
    CHECK_EQ(receiver.stopped_by(), 0);
    CHECK_EQ(receiver.receive(receiver_socket.fd, slab.data(), slab.size()), -EAGAIN);
  }
}

// A call takes no more datagrams than its capacity, nor more than it has
// room for at max_size each; the rest wait for the next call.
TEST(datagram_receive_stops_at_capacity_and_room) {
  for (BatchMode mode : kModes) {
    Socket sender(open_datagram("127.0.0.1", 0, {})), socket(open_datagram("127.0.0.1", 0, {}));
    REQUIRE(sender.fd >= 0 && socket.fd >= 0);
    Endpoint to = address_of(sender.fd, socket.fd, "127.0.0.1");
    std::string full(1024, 'x');
    for (int i = 0; i < 10; i++) {
      full[0] = static_cast<char>(i);
      REQUIRE(send_datagram(sender.fd, full.data(), full.size(), &to) == 1024);
    }
    REQUIRE(readable_within(socket.fd, 2000));
    std::vector<uint8_t> slab(8 * 1024);
    DatagramReceiver receiver(4, 1024, mode);
    int by_room = receiver.receive(socket.fd, slab.data(), 2 * 1024 + 1023);
    int by_capacity = receiver.receive(socket.fd, slab.data(), slab.size());
    CHECK_MSG(by_room == 2 && by_capacity == 4, mode_name(mode)
                                                    << ": " << by_room << ", " << by_capacity);
    CHECK_EQ(receiver.receive(socket.fd, slab.data(), 1023), -ENOBUFS);  // none fits
    int n = receiver.receive(socket.fd, slab.data(), slab.size());
    CHECK_EQ(n, 4);
    if (n == 4) CHECK_EQ(slab[receiver.datagram(3).offset], 9);
    CHECK_EQ(receiver.receive(socket.fd, slab.data(), slab.size()), -EAGAIN);
  }
}

// A datagram longer than max_size: its head, flagged, and the rest dropped
// (the next datagram is whole).
TEST(datagram_truncation_is_reported) {
  for (BatchMode mode : kModes) {
    Socket sender(open_datagram("127.0.0.1", 0, {})), socket(open_datagram("127.0.0.1", 0, {}));
    REQUIRE(sender.fd >= 0 && socket.fd >= 0);
    Endpoint to = address_of(sender.fd, socket.fd, "127.0.0.1");
    std::string big = pattern(3000, 1), small = pattern(100, 2);
    REQUIRE(send_datagram(sender.fd, big.data(), big.size(), &to) == 3000);
    REQUIRE(send_datagram(sender.fd, small.data(), small.size(), &to) == 100);
    REQUIRE(readable_within(socket.fd, 2000));
    std::vector<uint8_t> slab(8 * 1024);
    DatagramReceiver receiver(4, 1024, mode);
    REQUIRE(receiver.receive(socket.fd, slab.data(), slab.size()) == 2);
    CHECK_MSG(receiver.datagram(0).truncated, mode_name(mode));
    CHECK_EQ(receiver.datagram(0).length, 1024u);
    CHECK_EQ(bytes_of(slab.data(), receiver.datagram(0)), big.substr(0, 1024));
    CHECK(!receiver.datagram(1).truncated);
    CHECK_EQ(bytes_of(slab.data(), receiver.datagram(1)), small);
  }
}

// An empty datagram is a datagram: delivered as length 0, between others.
TEST(datagram_empty_datagram_is_delivered) {
  for (BatchMode mode : kModes) {
    Socket sender(open_datagram("127.0.0.1", 0, {})), socket(open_datagram("127.0.0.1", 0, {}));
    REQUIRE(sender.fd >= 0 && socket.fd >= 0);
    Endpoint to = address_of(sender.fd, socket.fd, "127.0.0.1");
    REQUIRE(send_datagram(sender.fd, "abc", 3, &to) == 3);
    REQUIRE(send_datagram(sender.fd, "", 0, &to) == 0);
    REQUIRE(send_datagram(sender.fd, "de", 2, &to) == 2);
    REQUIRE(readable_within(socket.fd, 2000));
    std::vector<uint8_t> slab(8 * 1024);
    DatagramReceiver receiver(4, 1024, mode);
    REQUIRE(receiver.receive(socket.fd, slab.data(), slab.size()) == 3);
    CHECK_EQ(receiver.datagram(1).length, 0u);
    CHECK(!receiver.datagram(1).truncated);
    CHECK_EQ(receiver.datagram(1).source.port, local_port(sender.fd));
    CHECK_EQ(bytes_of(slab.data(), receiver.datagram(2)), std::string("de"));
    CHECK_EQ(receiver.bytes(), 5u);
  }
}

// A connected socket whose peer's port is closed: the ICMP refusal comes
// back as ECONNREFUSED from the next receive, or the next send, once; the
// datagrams queued before it are not lost.
TEST(datagram_connected_refusal_is_reported) {
  for (BatchMode mode : kModes) {
    int closed_port;
    {
      Socket gone(open_datagram("127.0.0.1", 0, {}));
      REQUIRE(gone.fd >= 0);
      closed_port = local_port(gone.fd);
    }
    Socket socket(open_datagram("127.0.0.1", 0, {}));
    REQUIRE(socket.fd >= 0);
    Endpoint to;
    REQUIRE(datagram_endpoint(SocketAddress::kIPv4, "127.0.0.1", closed_port, &to) == 0);
    REQUIRE(connect_datagram(socket.fd, to) == 0);
    std::vector<uint8_t> slab(4096);
    DatagramReceiver receiver(4, 1024, mode);
    // From the next receive.
    CHECK_EQ(send_datagram(socket.fd, "ping", 4, nullptr), 4);
    REQUIRE(ready_within(socket.fd, 2000));
    CHECK_MSG(receiver.receive(socket.fd, slab.data(), slab.size()) == -ECONNREFUSED,
              mode_name(mode));
    CHECK_EQ(receiver.receive(socket.fd, slab.data(), slab.size()), -EAGAIN);  // once
    // From the next send, one or a batch.
    CHECK_EQ(send_datagram(socket.fd, "ping", 4, nullptr), 4);
    REQUIRE(ready_within(socket.fd, 2000));
    CHECK_EQ(send_datagram(socket.fd, "ping", 4, nullptr), -ECONNREFUSED);
    CHECK_EQ(send_datagram(socket.fd, "ping", 4, nullptr), 4);
    REQUIRE(ready_within(socket.fd, 2000));
    OutgoingDatagram batch[3] = {{"a", 1, nullptr}, {"b", 1, nullptr}, {"c", 1, nullptr}};
    int stopped_by = 0;
    CHECK_EQ(send_datagrams(socket.fd, batch, 3, &stopped_by, mode), 0);
    CHECK_EQ(stopped_by, -ECONNREFUSED);
    // A refusal that comes back while a batch is going out stops it, or
    // (sendmmsg on Linux sends the batch through) waits for the next call.
    OutgoingDatagram more[8];
    for (OutgoingDatagram& datagram : more) datagram = {"d", 1, nullptr};
    int sent = send_datagrams(socket.fd, more, 8, &stopped_by, mode);
    if (sent == 8) {
      CHECK_EQ(stopped_by, 0);
      REQUIRE(ready_within(socket.fd, 2000));
      CHECK_EQ(receiver.receive(socket.fd, slab.data(), slab.size()), -ECONNREFUSED);
    } else {
      CHECK_MSG(sent >= 1 && stopped_by == -ECONNREFUSED,
                mode_name(mode) << ": sent " << sent << ", stopped by " << stopped_by);
    }
  }
}

TEST(datagram_refusal_does_not_lose_queued_datagrams) {
  for (BatchMode mode : kModes) {
    Socket socket(open_datagram("127.0.0.1", 0, {}));
    auto peer = std::make_unique<Socket>(open_datagram("127.0.0.1", 0, {}));
    REQUIRE(socket.fd >= 0 && peer->fd >= 0);
    REQUIRE(connect_datagram(socket.fd, address_of(socket.fd, peer->fd, "127.0.0.1")) == 0);
    Endpoint to_socket = address_of(peer->fd, socket.fd, "127.0.0.1");
    REQUIRE(send_datagram(peer->fd, "one", 3, &to_socket) == 3);
    REQUIRE(send_datagram(peer->fd, "two", 3, &to_socket) == 3);
    REQUIRE(readable_within(socket.fd, 2000));
    peer.reset();  // its port is closed now
    CHECK_EQ(send_datagram(socket.fd, "ping", 4, nullptr), 4);
    std::vector<uint8_t> slab(4096);
    DatagramReceiver receiver(4, 1024, mode);
    int refused = 0, received = 0;
    // The refusal comes before or after the queued datagrams, as the system
    // orders them (Linux: before); neither is lost.
    for (int i = 0; i < 4 && (refused == 0 || received < 2); i++) {
      REQUIRE(ready_within(socket.fd, 2000));
      int n = receiver.receive(socket.fd, slab.data(), slab.size());
      if (n == -ECONNREFUSED) {
        refused++;
      } else if (n > 0) {
        received += n;
        if (receiver.stopped_by() == -ECONNREFUSED) refused++;
      }
    }
    CHECK_MSG(refused == 1 && received == 2,
              mode_name(mode) << ": refused " << refused << ", received " << received);
  }
}

// A batch goes out in order, to several destinations or the connected peer.
TEST(datagram_send_batch) {
  for (BatchMode mode : kModes) {
    Socket sender(open_datagram("127.0.0.1", 0, {}));
    Socket first(open_datagram("127.0.0.1", 0, {})), second(open_datagram("127.0.0.1", 0, {}));
    REQUIRE(sender.fd >= 0 && first.fd >= 0 && second.fd >= 0);
    Endpoint to_first = address_of(sender.fd, first.fd, "127.0.0.1");
    Endpoint to_second = address_of(sender.fd, second.fd, "127.0.0.1");
    constexpr int kCount = 100;  // more than one sendmmsg chunk
    std::vector<std::string> payloads;
    std::vector<OutgoingDatagram> batch;
    for (int i = 0; i < kCount; i++) payloads.push_back(pattern(static_cast<size_t>(10 + i), i));
    for (int i = 0; i < kCount; i++) {
      batch.push_back({payloads[static_cast<size_t>(i)].data(),
                       payloads[static_cast<size_t>(i)].size(), i % 2 ? &to_second : &to_first});
    }
    int stopped_by = -1;
    CHECK_EQ(send_datagrams(sender.fd, batch.data(), kCount, &stopped_by, mode), kCount);
    CHECK_EQ(stopped_by, 0);
    std::vector<uint8_t> slab(kCount * 256);
    DatagramReceiver receiver(kCount, 256, mode);
    for (int which = 0; which < 2; which++) {
      int fd = which ? second.fd : first.fd;
      REQUIRE(readable_within(fd, 2000));
      int n = receiver.receive(fd, slab.data(), slab.size());
      CHECK_MSG(n == kCount / 2, mode_name(mode) << ": " << n);
      for (int i = 0; i < n; i++) {
        CHECK_EQ(bytes_of(slab.data(), receiver.datagram(i)),
                 payloads[static_cast<size_t>(2 * i + which)]);
      }
    }
    // Connected: no addresses.
    REQUIRE(connect_datagram(sender.fd, to_first) == 0);
    OutgoingDatagram connected[2] = {{"x", 1, nullptr}, {"yz", 2, nullptr}};
    CHECK_EQ(send_datagrams(sender.fd, connected, 2, &stopped_by, mode), 2);
    REQUIRE(readable_within(first.fd, 2000));
    REQUIRE(receiver.receive(first.fd, slab.data(), slab.size()) == 2);
    CHECK_EQ(bytes_of(slab.data(), receiver.datagram(1)), std::string("yz"));
    CHECK_EQ(send_datagrams(sender.fd, connected, 0, &stopped_by, mode), 0);
    CHECK_EQ(send_datagrams(sender.fd, connected, -1, &stopped_by, mode), -EINVAL);
  }
}

// Connected, only the peer's datagrams arrive; disconnected, everyone's again,
// at the same local address.
TEST(datagram_connect_filters_and_disconnect_restores) {
  Socket socket(open_datagram("127.0.0.1", 0, {}));
  REQUIRE(socket.fd >= 0);
  int port = local_port(socket.fd);
  Socket peer(open_datagram("127.0.0.1", 0, {})), stranger(open_datagram("127.0.0.1", 0, {}));
  REQUIRE(socket.fd >= 0 && peer.fd >= 0 && stranger.fd >= 0);
  Endpoint to_peer = address_of(socket.fd, peer.fd, "127.0.0.1");
  REQUIRE(connect_datagram(socket.fd, to_peer) == 0);
  SocketAddress connected_to;
  CHECK_EQ(socket_address(socket.fd, true, &connected_to), 0);
  CHECK_EQ(connected_to.port, local_port(peer.fd));
  Endpoint to_socket = address_of(peer.fd, socket.fd, "127.0.0.1");
  REQUIRE(send_datagram(stranger.fd, "stranger", 8, &to_socket) == 8);
  REQUIRE(send_datagram(peer.fd, "peer", 4, &to_socket) == 4);
  REQUIRE(readable_within(socket.fd, 2000));
  std::vector<uint8_t> slab(4096);
  DatagramReceiver receiver(4, 1024);
  REQUIRE(receiver.receive(socket.fd, slab.data(), slab.size()) == 1);
  CHECK_EQ(bytes_of(slab.data(), receiver.datagram(0)), std::string("peer"));
  REQUIRE(disconnect_datagram(socket.fd) == 0);
  CHECK(socket_address(socket.fd, true, &connected_to) < 0);
  CHECK_EQ(local_port(socket.fd), port);
  CHECK(send_datagram(socket.fd, "nowhere", 7, nullptr) < 0);  // no peer any more
  CHECK_EQ(disconnect_datagram(socket.fd), 0);                 // twice is fine
  REQUIRE(send_datagram(stranger.fd, "stranger", 8, &to_socket) == 8);
  REQUIRE(readable_within(socket.fd, 2000));
  REQUIRE(receiver.receive(socket.fd, slab.data(), slab.size()) == 1);
  CHECK_EQ(bytes_of(slab.data(), receiver.datagram(0)), std::string("stranger"));
  // Bound to any address: any address again after the disconnect.
  Socket any(open_datagram("0.0.0.0", 0, {}));
  REQUIRE(any.fd >= 0);
  int any_port = local_port(any.fd);
  REQUIRE(connect_datagram(any.fd, to_peer) == 0);
  REQUIRE(disconnect_datagram(any.fd) == 0);
  SocketAddress local;
  REQUIRE(socket_address(any.fd, false, &local) == 0);
  CHECK_EQ(local.address, std::string("0.0.0.0"));
  CHECK_EQ(local.port, any_port);
}

// IPv4 multicast over loopback: a member receives a group's datagram sent
// through 127.0.0.1 with multicast loopback on; after leaving, it does not.
TEST(datagram_multicast_ipv4_over_loopback) {
  const char* group = "239.255.77.1";
  DatagramOptions shared;
  shared.reuse_address = true;
  Socket member(open_datagram("0.0.0.0", 0, shared)), sender(open_datagram("127.0.0.1", 0, {}));
  REQUIRE(member.fd >= 0 && sender.fd >= 0);
  // A second member shares the group's port (reuse_address).
  Socket other(open_datagram("0.0.0.0", local_port(member.fd), shared));
  REQUIRE(other.fd >= 0);
  REQUIRE(set_membership(member.fd, group, "127.0.0.1", true) == 0);
  REQUIRE(set_membership(other.fd, group, "127.0.0.1", true) == 0);
  CHECK_EQ(set_membership(member.fd, group, "127.0.0.1", true), -EADDRINUSE);
  CHECK_EQ(set_multicast_interface(sender.fd, "127.0.0.1"), 0);
  CHECK_EQ(set_multicast_loopback(sender.fd, true), 0);
  CHECK_EQ(set_multicast_ttl(sender.fd, 1), 0);
  Endpoint to_group;
  REQUIRE(datagram_endpoint(SocketAddress::kIPv4, group, local_port(member.fd), &to_group) == 0);
  REQUIRE(send_datagram(sender.fd, "to the group", 12, &to_group) == 12);
  REQUIRE(readable_within(member.fd, 2000));
  std::vector<uint8_t> slab(4096);
  DatagramReceiver receiver(4, 1024);
  REQUIRE(receiver.receive(member.fd, slab.data(), slab.size()) == 1);
  CHECK_EQ(bytes_of(slab.data(), receiver.datagram(0)), std::string("to the group"));
  CHECK_EQ(text_of(receiver.datagram(0).source), std::string("127.0.0.1"));
  REQUIRE(readable_within(other.fd, 2000));
  REQUIRE(receiver.receive(other.fd, slab.data(), slab.size()) == 1);
  CHECK_EQ(bytes_of(slab.data(), receiver.datagram(0)), std::string("to the group"));
  REQUIRE(set_membership(member.fd, group, "127.0.0.1", false) == 0);
  REQUIRE(set_membership(other.fd, group, "127.0.0.1", false) == 0);
#ifdef _WIN32
  // Refused, with an error Windows does not document (Wine: WSAEINVAL).
  CHECK(set_membership(member.fd, group, "127.0.0.1", false) < 0);
#else
  CHECK_EQ(set_membership(member.fd, group, "127.0.0.1", false), -EADDRNOTAVAIL);
#endif
  REQUIRE(send_datagram(sender.fd, "again", 5, &to_group) == 5);
  CHECK(!readable_within(member.fd, 50));
}

// Source-specific: a member of (source, group) hears that source only.
TEST(datagram_source_specific_multicast_over_loopback) {
  const char* group = "232.1.2.3";
  Socket member(open_datagram("0.0.0.0", 0, {}));
  Socket sender(open_datagram("127.0.0.1", 0, {}));
  REQUIRE(member.fd >= 0 && sender.fd >= 0);
  REQUIRE(set_source_membership(member.fd, "127.0.0.2", group, "127.0.0.1", true) == 0);
  REQUIRE(set_multicast_interface(sender.fd, "127.0.0.1") == 0);
  Endpoint to_group;
  REQUIRE(datagram_endpoint(SocketAddress::kIPv4, group, local_port(member.fd), &to_group) == 0);
  REQUIRE(send_datagram(sender.fd, "from 127.0.0.1", 14, &to_group) == 14);
  CHECK(!readable_within(member.fd, 50));  // another source
  CHECK_EQ(set_source_membership(member.fd, "127.0.0.2", group, "127.0.0.1", false), 0);
  REQUIRE(set_source_membership(member.fd, "127.0.0.1", group, "127.0.0.1", true) == 0);
  REQUIRE(send_datagram(sender.fd, "from 127.0.0.1", 14, &to_group) == 14);
  REQUIRE(readable_within(member.fd, 2000));
  std::vector<uint8_t> slab(4096);
  DatagramReceiver receiver(4, 1024);
  CHECK_EQ(receiver.receive(member.fd, slab.data(), slab.size()), 1);
  CHECK_EQ(set_source_membership(member.fd, "::1", group, "", true), -EINVAL);
}

TEST(datagram_multicast_ipv6_options) {
  Socket socket(open_datagram("::", 0, {}));
  REQUIRE(socket.fd >= 0);
  CHECK_EQ(set_multicast_ttl(socket.fd, 4), 0);
  CHECK_EQ(set_multicast_loopback(socket.fd, true), 0);
  CHECK_EQ(set_multicast_interface(socket.fd, "::"), 0);  // the system's choice
  CHECK_EQ(set_membership(socket.fd, "ff02::1:3", "", true), 0);
  CHECK_EQ(set_membership(socket.fd, "ff02::1:3", "", false), 0);
  CHECK_EQ(set_membership(socket.fd, "ff02::1:3", "127.0.0.1", true), -EINVAL);  // wrong family
  CHECK_EQ(set_membership(socket.fd, "2001:db8::1", "", true), -EINVAL);         // not a group
}

TEST(datagram_broadcast_needs_the_option) {
  // 127.255.255.255 is lo's broadcast address: broadcast without leaving
  // the machine.
  Socket listener(open_datagram("0.0.0.0", 0, {})), sender(open_datagram("127.0.0.1", 0, {}));
  REQUIRE(listener.fd >= 0 && sender.fd >= 0);
  Endpoint to_all;
  REQUIRE(datagram_endpoint(SocketAddress::kIPv4, "127.255.255.255", local_port(listener.fd),
                            &to_all) == 0);
  CHECK_EQ(send_datagram(sender.fd, "all", 3, &to_all), -EACCES);
  REQUIRE(set_broadcast(sender.fd, true) == 0);
  CHECK_EQ(send_datagram(sender.fd, "all", 3, &to_all), 3);
  CHECK(readable_within(listener.fd, 2000));
  CHECK_EQ(set_broadcast(sender.fd, false), 0);
  CHECK_EQ(send_datagram(sender.fd, "all", 3, &to_all), -EACCES);
}

TEST(datagram_ttl_and_buffer_options) {
  DatagramOptions sized;
  sized.receive_buffer = 256 * 1024;
  sized.send_buffer = 128 * 1024;
  Socket v4(open_datagram("127.0.0.1", 0, sized)), v6(open_datagram("::1", 0, {}));
  REQUIRE(v4.fd >= 0 && v6.fd >= 0);
  int value = 0;
  socklen_t length = sizeof value;
  REQUIRE(getsockopt(native_socket(v4.fd), SOL_SOCKET, SO_RCVBUF, reinterpret_cast<char*>(&value),
                     &length) == 0);
  CHECK(value >= 256 * 1024 || value > 200 * 1024);  // the system may cap or double it
  CHECK_EQ(set_ttl(v4.fd, 64), 0);
  CHECK_EQ(set_ttl(v6.fd, 64), 0);
  length = sizeof value;
  REQUIRE(getsockopt(native_socket(v6.fd), IPPROTO_IPV6, IPV6_UNICAST_HOPS,
                     reinterpret_cast<char*>(&value), &length) == 0);
  CHECK_EQ(value, 64);
  CHECK_EQ(set_ttl(v4.fd, 0), -EINVAL);
  CHECK_EQ(set_ttl(v4.fd, 256), -EINVAL);
  CHECK_EQ(set_multicast_ttl(v4.fd, 0), 0);
  CHECK_EQ(set_multicast_ttl(v4.fd, -1), -EINVAL);
  CHECK_EQ(set_multicast_ttl(v4.fd, 256), -EINVAL);
}

// Workers share a port with reuse_port, where the system balances (SO_REUSEPORT).
TEST(datagram_reuse_port_shares_the_port) {
  DatagramOptions shared;
  shared.reuse_port = true;
  Socket first(open_datagram("127.0.0.1", 0, shared));
#if defined(SO_REUSEPORT) || defined(SO_REUSEPORT_LB)
  REQUIRE(first.fd >= 0);
  Socket second(open_datagram("127.0.0.1", local_port(first.fd), shared));
  CHECK(second.fd >= 0);
  CHECK_EQ(open_datagram("127.0.0.1", local_port(first.fd), {}), -EADDRINUSE);
#else
  CHECK_EQ(first.fd, -ENOTSUP);
#endif
}

TEST(datagram_bad_arguments) {
  CHECK_EQ(open_datagram("localhost", 0, {}), -EINVAL);  // numeric only, as TCP
  CHECK_EQ(open_datagram("127.0.0.1", 65536, {}), -EINVAL);
  CHECK_EQ(open_datagram("127.0.0.1", -1, {}), -EINVAL);
  CHECK_EQ(open_datagram("127.0.0.1%1", 0, {}), -EINVAL);  // zones are IPv6's
  CHECK_EQ(open_datagram("::1%no-such-interface", 0, {}), -EINVAL);
  DatagramOptions negative;
  negative.receive_buffer = -1;
  CHECK_EQ(open_datagram("127.0.0.1", 0, negative), -EINVAL);
  Socket v4(open_datagram("127.0.0.1", 0, {}));
  REQUIRE(v4.fd >= 0);
  CHECK_EQ(open_datagram("127.0.0.1", local_port(v4.fd), {}), -EADDRINUSE);
  Endpoint endpoint;
  CHECK_EQ(datagram_endpoint(SocketAddress::kIPv4, "::1", 1, &endpoint), -EAFNOSUPPORT);
  CHECK_EQ(datagram_endpoint(SocketAddress::kUnix, "127.0.0.1", 1, &endpoint), -EAFNOSUPPORT);
  CHECK_EQ(datagram_endpoint(SocketAddress::kIPv4, "", 1, &endpoint), -EINVAL);
  CHECK_EQ(datagram_endpoint(SocketAddress::kIPv4, "127.0.0.1", 70000, &endpoint), -EINVAL);
  CHECK_EQ(set_membership(v4.fd, "10.0.0.1", "", true), -EINVAL);  // not a group
  CHECK_EQ(set_membership(v4.fd, "not an address", "", true), -EINVAL);
  CHECK_EQ(set_membership(v4.fd, "239.1.1.1", "eth0", true), -EINVAL);  // an address is wanted
  CHECK_EQ(set_multicast_interface(v4.fd, "nowhere"), -EINVAL);
  CHECK_EQ(set_multicast_interface(v4.fd, "::%1"), -EINVAL);  // an IPv6 interface, IPv4 socket
  Endpoint to_self = address_of(v4.fd, v4.fd, "127.0.0.1");
  std::vector<char> too_long(70000);
  CHECK_EQ(send_datagram(v4.fd, too_long.data(), too_long.size(), &to_self), -EMSGSIZE);
  PackedAddress unnamed;
  SocketAddress printable;
  CHECK_EQ(format_address(unnamed, &printable), -EAFNOSUPPORT);
#ifndef _WIN32
  // Closed sockets: EBADF, never a crash.
  int closed = open_datagram("127.0.0.1", 0, {});
  REQUIRE(closed >= 0);
  close_socket(closed);
  std::vector<uint8_t> slab(2048);
  DatagramReceiver receiver(2, 1024);
  CHECK_EQ(receiver.receive(closed, slab.data(), slab.size()), -EBADF);
  CHECK_EQ(send_datagram(closed, "x", 1, &endpoint), -EBADF);
  CHECK_EQ(set_ttl(closed, 1), -EBADF);
  CHECK_EQ(set_broadcast(closed, true), -EBADF);
#endif
}

#ifndef _WIN32
// Zones name interfaces, both ways: in an address given, in a source printed.
TEST(datagram_ipv6_zone) {
  unsigned index = if_nametoindex("lo");
  if (index == 0) index = if_nametoindex("lo0");  // macOS, BSD
  REQUIRE(index != 0);
  char name[IF_NAMESIZE] = {};
  REQUIRE(if_indextoname(index, name) != nullptr);
  Endpoint by_name, by_index;
  REQUIRE(datagram_endpoint(SocketAddress::kIPv6, std::string("fe80::1%") + name, 9, &by_name) ==
          0);
  REQUIRE(datagram_endpoint(SocketAddress::kIPv6, "fe80::1%" + std::to_string(index), 9,
                            &by_index) == 0);
  CHECK_EQ(reinterpret_cast<const sockaddr_in6*>(&by_name.storage)->sin6_scope_id, index);
  CHECK_EQ(reinterpret_cast<const sockaddr_in6*>(&by_index.storage)->sin6_scope_id, index);
  PackedAddress source;
  source.family = 6;
  source.port = 9;
  source.scope_id = index;
  source.address[0] = 0xfe;
  source.address[1] = 0x80;
  source.address[15] = 1;
  CHECK_EQ(text_of(source), std::string("fe80::1%") + name);
}

// Every socket opened is closed: by close_socket, or by open_datagram itself
// when it fails after creating one.
TEST(datagram_no_fd_leaked) {
  int before = testing::count_fds();
  REQUIRE(before > 0);
  {
    Socket taken(open_datagram("127.0.0.1", 0, {}));
    REQUIRE(taken.fd >= 0);
    for (int i = 0; i < 20; i++) {
      CHECK_EQ(open_datagram("127.0.0.1", local_port(taken.fd), {}), -EADDRINUSE);
      CHECK_EQ(open_datagram("192.0.2.199", 0, {}), -EADDRNOTAVAIL);  // not this machine's
    }
    std::vector<uint8_t> slab(4096);
    DatagramReceiver receiver(4, 1024);
    Socket a(open_datagram("::1", 0, {}));
    REQUIRE(a.fd >= 0);
    CHECK_EQ(receiver.receive(a.fd, slab.data(), slab.size()), -EAGAIN);
  }
  CHECK_EQ(testing::count_fds(), before);
}
#endif
