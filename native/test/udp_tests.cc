// UDP sockets in the loop (udp.h): a real poller (the backend named by
// $NATIVE_REACTOR_BACKEND; test/native-test.mjs runs them once per backend),
// loopback only, every wait bounded by a deadline. The peers are plain
// sockets from datagram.h; the sink decodes each kDatagram record (source,
// then payload) as JavaScript does.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../datagram.h"
#include "../loop.h"
#include "../platform.h"
#include "../poller.h"
#include "test_framework.h"
#include "test_sockets.h"

using namespace reactor;
using testing::readable_within;

namespace {

std::string backend_under_test() {
  const char* name = std::getenv("NATIVE_REACTOR_BACKEND");
  return name && *name ? name : available_backends().front();
}

uint64_t packed_of(const Record& r) {
  return Id{static_cast<uint32_t>(r.slot), static_cast<uint32_t>(r.gen)}.packed();
}

struct Received {
  uint64_t socket;
  PackedAddress source;
  std::string bytes;
};

struct Failure {
  uint64_t socket;
  int error;
  int operation;
};

// Keeps every datagram and error; `hook` runs inside the delivery, as
// JavaScript would.
class UdpSink final : public Sink {
 public:
  bool deliver(const Record* records, size_t count) override {
    deliveries++;
    for (size_t i = 0; i < count; i++) {
      const Record& r = records[i];
      if (r.kind == kDatagram) {
        Received got{packed_of(r), {}, {}};
        if (r.a < 0 || r.a % 8 != 0 ||
            static_cast<size_t>(r.a) + sizeof(PackedAddress) + static_cast<size_t>(r.b) >
                slab_size) {
          bad_records++;
          continue;
        }
        const uint8_t* at = slabs.back().get() + r.a;
        std::memcpy(&got.source, at, sizeof(PackedAddress));
        got.bytes.assign(reinterpret_cast<const char*>(at + sizeof(PackedAddress)),
                         static_cast<size_t>(r.b));
        datagrams.push_back(got);
      } else if (r.kind == kDatagramError) {
        failures.push_back({packed_of(r), r.a, r.b});
      }
      if (hook) hook(r, slabs.back().get());
    }
    return false;
  }

  Slab fresh_slab() override {
    slabs.emplace_back(new uint8_t[slab_size]);
    return {slabs.back().get(), slab_size};
  }

  size_t slab_size = 256 * 1024;
  std::vector<std::unique_ptr<uint8_t[]>> slabs;
  std::vector<Received> datagrams;
  std::vector<Failure> failures;
  size_t deliveries = 0;
  int bad_records = 0;
  std::function<void(const Record&, const uint8_t* slab)> hook;
};

struct Harness {
  Harness() : buffer(1024) {
    std::string error;
    std::unique_ptr<Poller> poller = make_poller(backend_under_test(), &error);
    if (poller)
      loop = std::make_unique<Loop>(std::move(poller), &sink, buffer.data(), buffer.size());
  }

  void step(int wait_ms) {
    loop->prepare_wait();
    readable_within(loop->pollable_fd(), wait_ms);
    loop->poll();
    loop->run_timers();
  }

  template <typename Pred>
  bool pump_until(Pred pred, int timeout_ms = 5000) {
    uint64_t deadline = Loop::now_ms() + static_cast<uint64_t>(timeout_ms);
    for (;;) {
      if (pred()) return true;
      uint64_t now = Loop::now_ms();
      if (now >= deadline) return pred();
      step(static_cast<int>(std::min<uint64_t>(10, deadline - now)));
    }
  }

  void pump_for(int ms) {
    uint64_t deadline = Loop::now_ms() + static_cast<uint64_t>(ms);
    for (uint64_t now = Loop::now_ms(); now < deadline; now = Loop::now_ms()) {
      step(static_cast<int>(std::min<uint64_t>(5, deadline - now)));
    }
  }

  int64_t open(const std::string& host, DatagramOptions options = {}) {
    return loop->udp().open(host, 0, options);
  }

  int port_of(uint64_t id) {
    SocketAddress address;
    return loop->address(id, false, &address) == 0 ? address.port : -1;
  }

  UdpCounters counters(uint64_t id) {
    UdpCounters out;
    loop->udp().counters(id, &out);
    return out;
  }

  UdpSink sink;
  std::vector<Record> buffer;
  std::unique_ptr<Loop> loop;
};

// A plain UDP socket, closed however the test ends.
struct Peer {
  int fd;
  explicit Peer(const std::string& host) : fd(open_datagram(host, 0, {})) {}
  ~Peer() {
    if (fd >= 0) close_socket(fd);
  }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  int port() const {
    SocketAddress address;
    return socket_address(fd, false, &address) == 0 ? address.port : -1;
  }
  SocketAddress::Family family() const {
    SocketAddress address;
    return socket_address(fd, false, &address) == 0 ? address.family : SocketAddress::kNone;
  }
  bool send_to(const std::string& host, int port, const std::string& bytes) {
    Endpoint to;
    return datagram_endpoint(family(), host, port, &to) == 0 &&
           send_datagram(fd, bytes.data(), bytes.size(), &to) == static_cast<ssize_t>(bytes.size());
  }
  // Every datagram that arrives within timeout_ms of the one before.
  std::vector<std::string> receive_all(size_t expected, int timeout_ms = 2000) {
    std::vector<std::string> out;
    std::vector<uint8_t> memory(64 * 1024 * 16);
    DatagramReceiver receiver(16, 64 * 1024);
    while (out.size() < expected && readable_within(fd, timeout_ms)) {
      int n = receiver.receive(fd, memory.data(), memory.size());
      for (int i = 0; i < n; i++) {
        const ReceivedDatagram& d = receiver.datagram(i);
        out.emplace_back(reinterpret_cast<const char*>(memory.data()) + d.offset, d.length);
      }
    }
    return out;
  }
};

std::string message(size_t i) {
  std::string s = "datagram " + std::to_string(i) + " ";
  s.append(i % 300, static_cast<char>('a' + i % 26));
  return s;
}

std::string host_of(const PackedAddress& source) {
  SocketAddress address;
  return format_address(source, &address) == 0 ? address.address : "?";
}

// A port nobody listens on (just released).
int closed_port(const std::string& host) {
  Peer gone(host);
  return gone.port();
}

void burst(const std::string& host, uint16_t family) {
  Harness h;
  REQUIRE(h.loop);
  DatagramOptions options;
  options.receive_buffer = 4 * 1024 * 1024;  // the whole burst waits in the kernel
  int64_t id = h.open(host, options);
  REQUIRE(id >= 0);
  Peer sender(host);
  REQUIRE(sender.fd >= 0);
  const size_t kCount = 1000;
  for (size_t i = 0; i < kCount; i++) REQUIRE(sender.send_to(host, h.port_of(id), message(i)));
  CHECK(h.pump_until([&] { return h.sink.datagrams.size() >= kCount; }));
  REQUIRE(h.sink.datagrams.size() == kCount);
  CHECK_EQ(h.sink.bad_records, 0);
  for (size_t i = 0; i < kCount; i++) {
    const Received& got = h.sink.datagrams[i];
    CHECK_EQ(got.socket, static_cast<uint64_t>(id));
    CHECK_EQ(got.bytes, message(i));
    CHECK_EQ(got.source.family, family);
    CHECK_EQ(static_cast<int>(got.source.port), sender.port());
    CHECK_EQ(host_of(got.source), host);
  }
  // recvmmsg takes up to 64 at a time where the system has it; one call
  // each elsewhere, still up to 64 per wake-up.
  CHECK(h.sink.deliveries <= kCount / 32);
  UdpCounters counters = h.counters(static_cast<uint64_t>(id));
  CHECK_EQ(counters.received, kCount);
  CHECK_EQ(h.loop->udp().close(static_cast<uint64_t>(id)), 0);
}

}  // namespace

TEST(udp_burst_arrives_intact_in_order_in_few_batches_ipv4) { burst("127.0.0.1", 4); }

TEST(udp_burst_arrives_intact_in_order_in_few_batches_ipv6) { burst("::1", 6); }

// Sends made while a batch is delivered wait for its end and go out together;
// a batch larger than the queue flushes when the queue fills, dropping nothing.
TEST(udp_sends_during_a_delivery_go_out_when_it_returns) {
  Harness h;
  REQUIRE(h.loop);
  int64_t id = h.open("127.0.0.1");
  REQUIRE(id >= 0);
  Peer client("127.0.0.1");
  REQUIRE(client.fd >= 0);
  const size_t kReplies = 150;  // more than the queue holds
  std::vector<int> results;
  h.sink.hook = [&](const Record& r, const uint8_t* slab) {
    if (r.kind != kDatagram) return;
    PackedAddress source;
    std::memcpy(&source, slab + r.a, sizeof source);
    for (size_t i = 0; i < kReplies; i++) {
      std::string reply = message(i);
      results.push_back(h.loop->udp().send(static_cast<uint64_t>(id), reply.data(), reply.size(),
                                           host_of(source), source.port, true));
    }
  };
  REQUIRE(client.send_to("127.0.0.1", h.port_of(id), "go"));
  CHECK(h.pump_until([&] { return !results.empty(); }));
  std::vector<std::string> replies = client.receive_all(kReplies);
  REQUIRE(replies.size() == kReplies);
  for (size_t i = 0; i < kReplies; i++) CHECK_EQ(replies[i], message(i));
  REQUIRE(results.size() == kReplies);
  for (int result : results) CHECK_EQ(result, static_cast<int>(kUdpQueued));
  UdpCounters counters = h.counters(static_cast<uint64_t>(id));
  CHECK_EQ(counters.sent, kReplies);
  CHECK_EQ(counters.dropped, 0u);
}

TEST(udp_send_outside_a_delivery_goes_at_once) {
  Harness h;
  REQUIRE(h.loop);
  int64_t id = h.open("::1");
  REQUIRE(id >= 0);
  Peer peer("::1");
  REQUIRE(peer.fd >= 0);
  CHECK_EQ(h.loop->udp().send(static_cast<uint64_t>(id), "now", 3, "::1", peer.port(), false),
           static_cast<int>(kUdpSent));
  std::vector<std::string> got = peer.receive_all(1);
  REQUIRE(got.size() == 1);
  CHECK_EQ(got[0], std::string("now"));
  // Another port of the same host, then the first again: each reaches its own.
  Peer second("::1");
  REQUIRE(second.fd >= 0);
  CHECK_EQ(h.loop->udp().send(static_cast<uint64_t>(id), "two", 3, "::1", second.port(), false),
           static_cast<int>(kUdpSent));
  CHECK_EQ(h.loop->udp().send(static_cast<uint64_t>(id), "one", 3, "::1", peer.port(), false),
           static_cast<int>(kUdpSent));
  CHECK_EQ(h.loop->udp().send(static_cast<uint64_t>(id), "x", 1, "::1", 70000, false), -EINVAL);
  got = second.receive_all(1);
  REQUIRE(got.size() == 1);
  CHECK_EQ(got[0], std::string("two"));
  got = peer.receive_all(1);
  REQUIRE(got.size() == 1);
  CHECK_EQ(got[0], std::string("one"));
  // Queued with `batch` outside a delivery: goes before the loop waits.
  CHECK_EQ(h.loop->udp().send(static_cast<uint64_t>(id), "later", 5, "::1", peer.port(), true),
           static_cast<int>(kUdpQueued));
  h.step(0);
  got = peer.receive_all(1);
  REQUIRE(got.size() == 1);
  CHECK_EQ(got[0], std::string("later"));
}

// A connected socket hears the peer's ICMP refusal as ECONNREFUSED, reported
// as a record; the socket stays open and usable.
TEST(udp_connected_refusal_is_reported_and_the_socket_stays_open) {
  Harness h;
  REQUIRE(h.loop);
  int64_t id = h.open("127.0.0.1");
  REQUIRE(id >= 0);
  uint64_t socket = static_cast<uint64_t>(id);
  CHECK_EQ(h.loop->udp().disconnect(socket), -ENOTCONN);
  REQUIRE(h.loop->udp().connect(socket, "127.0.0.1", closed_port("127.0.0.1")) == 0);
  SocketAddress peer;
  CHECK_EQ(h.loop->address(socket, true, &peer), 0);
  CHECK_EQ(h.loop->udp().send(socket, "anyone?", 7, "", 0, false), static_cast<int>(kUdpSent));
  CHECK(h.pump_until([&] { return !h.sink.failures.empty(); }, 2000));
  REQUIRE(h.sink.failures.size() == 1);
  CHECK_EQ(h.sink.failures[0].socket, socket);
  CHECK_EQ(h.sink.failures[0].error, ECONNREFUSED);
  CHECK_EQ(h.sink.failures[0].operation, static_cast<int>(kUdpReceive));
  // Nothing more is reported for it: the error was read once.
  h.pump_for(30);
  CHECK_EQ(h.sink.failures.size(), 1u);
  // Still open: disconnected, it hears from anyone again.
  REQUIRE(h.loop->udp().disconnect(socket) == 0);
  CHECK_EQ(h.loop->udp().send(socket, "x", 1, "", 0, false), -EDESTADDRREQ);
  Peer other("127.0.0.1");
  REQUIRE(other.send_to("127.0.0.1", h.port_of(socket), "still here"));
  CHECK(h.pump_until([&] { return !h.sink.datagrams.empty(); }));
  REQUIRE(h.sink.datagrams.size() == 1);
  CHECK_EQ(h.sink.datagrams[0].bytes, std::string("still here"));
}

// A send the kernel refuses at once (broadcast without SO_BROADCAST) is
// reported in the next batch; the socket goes on.
TEST(udp_refused_send_is_reported_in_the_next_batch) {
  Harness h;
  REQUIRE(h.loop);
  int64_t id = h.open("127.0.0.1");
  REQUIRE(id >= 0);
  uint64_t socket = static_cast<uint64_t>(id);
  Peer listener("0.0.0.0");
  REQUIRE(listener.fd >= 0);
  CHECK_EQ(h.loop->udp().send(socket, "all", 3, "127.255.255.255", listener.port(), false),
           static_cast<int>(kUdpFailed));
  CHECK(h.pump_until([&] { return !h.sink.failures.empty(); }));
  REQUIRE(h.sink.failures.size() == 1);
  CHECK_EQ(h.sink.failures[0].error, EACCES);
  CHECK_EQ(h.sink.failures[0].operation, static_cast<int>(kUdpSend));
  REQUIRE(h.loop->udp().set_option(socket, UdpOption::kBroadcast, 1) == 0);
  CHECK_EQ(h.loop->udp().send(socket, "all", 3, "127.255.255.255", listener.port(), false),
           static_cast<int>(kUdpSent));
  CHECK(readable_within(listener.fd, 2000));
  UdpCounters counters = h.counters(socket);
  CHECK_EQ(counters.errors, 1u);
  CHECK_EQ(counters.sent, 1u);
}

TEST(udp_pause_stops_records_and_resume_delivers_what_waited) {
  Harness h;
  REQUIRE(h.loop);
  int64_t id = h.open("127.0.0.1");
  REQUIRE(id >= 0);
  uint64_t socket = static_cast<uint64_t>(id);
  Peer sender("127.0.0.1");
  REQUIRE(sender.fd >= 0);
  REQUIRE(h.loop->udp().set_reading(socket, false) == 0);
  for (size_t i = 0; i < 10; i++)
    REQUIRE(sender.send_to("127.0.0.1", h.port_of(socket), message(i)));
  h.pump_for(50);
  CHECK_EQ(h.sink.datagrams.size(), 0u);
  REQUIRE(h.loop->udp().set_reading(socket, true) == 0);
  CHECK(h.pump_until([&] { return h.sink.datagrams.size() >= 10; }));
  REQUIRE(h.sink.datagrams.size() == 10);
  for (size_t i = 0; i < 10; i++) CHECK_EQ(h.sink.datagrams[i].bytes, message(i));
}

// Slabs run short in the middle of a batch: the datagrams before go out with
// the old slab, the rest land in a fresh one, none overwritten.
TEST(udp_batch_across_slabs_keeps_every_datagram) {
  Harness h;
  REQUIRE(h.loop);
  h.sink.slab_size = 16 * 1024;
  DatagramOptions options;
  options.receive_buffer = 1024 * 1024;
  int64_t id = h.open("127.0.0.1", options);
  REQUIRE(id >= 0);
  Peer sender("127.0.0.1");
  REQUIRE(sender.fd >= 0);
  std::vector<std::string> sent;
  for (size_t i = 0; i < 60; i++) {
    sent.push_back(std::string(3000 + i, static_cast<char>('A' + i % 26)));
    REQUIRE(sender.send_to("127.0.0.1", h.port_of(id), sent.back()));
  }
  CHECK(h.pump_until([&] { return h.sink.datagrams.size() >= sent.size(); }));
  REQUIRE(h.sink.datagrams.size() == sent.size());
  for (size_t i = 0; i < sent.size(); i++) CHECK_EQ(h.sink.datagrams[i].bytes, sent[i]);
  CHECK(h.sink.slabs.size() >= 10);
  CHECK_EQ(h.sink.bad_records, 0);
}

TEST(udp_bad_calls_are_refused) {
  Harness h;
  REQUIRE(h.loop);
  CHECK_EQ(h.open("not an address"), static_cast<int64_t>(-EINVAL));
  int64_t id = h.open("127.0.0.1");
  REQUIRE(id >= 0);
  uint64_t socket = static_cast<uint64_t>(id);
  CHECK_EQ(h.loop->udp().send(socket, "x", 1, "::1", 9, false), -EAFNOSUPPORT);
  CHECK_EQ(h.loop->udp().send(socket, "x", 1, "localhost", 9, false), -EINVAL);
  CHECK_EQ(h.loop->udp().send(socket, "x", 1, "", 0, false), -EDESTADDRREQ);
  CHECK_EQ(h.loop->udp().connect(socket, "::1", 9), -EAFNOSUPPORT);
  CHECK_EQ(h.loop->udp().set_option(socket, UdpOption::kTtl, 0), -EINVAL);
  CHECK_EQ(h.loop->udp().set_membership(socket, "127.0.0.1", "", true), -EINVAL);
  // Not a UDP socket, or gone.
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  CHECK_EQ(h.loop->udp().send(static_cast<uint64_t>(listener), "x", 1, "127.0.0.1", 9, false),
           -EBADF);
  CHECK_EQ(h.loop->write(socket, nullptr, 0), -EBADF);  // not a stream either
  CHECK_EQ(h.loop->udp().close(socket), 0);
  CHECK_EQ(h.loop->udp().close(socket), -EBADF);
  CHECK_EQ(h.loop->udp().send(socket, "x", 1, "127.0.0.1", 9, false), -EBADF);
  CHECK_EQ(h.loop->udp().set_reading(socket, true), -EBADF);
}

TEST(udp_options_and_multicast_through_the_loop) {
  Harness h;
  REQUIRE(h.loop);
  DatagramOptions shared;
  shared.reuse_address = true;
  int64_t member = h.open("0.0.0.0", shared);
  int64_t sender = h.open("127.0.0.1");
  REQUIRE(member >= 0 && sender >= 0);
  UdpSockets udp = h.loop->udp();
  const char* group = "239.255.77.2";
  REQUIRE(udp.set_membership(static_cast<uint64_t>(member), group, "127.0.0.1", true) == 0);
  CHECK_EQ(udp.set_multicast_interface(static_cast<uint64_t>(sender), "127.0.0.1"), 0);
  CHECK_EQ(udp.set_option(static_cast<uint64_t>(sender), UdpOption::kMulticastLoopback, 1), 0);
  CHECK_EQ(udp.set_option(static_cast<uint64_t>(sender), UdpOption::kMulticastTtl, 1), 0);
  CHECK_EQ(udp.set_option(static_cast<uint64_t>(sender), UdpOption::kTtl, 64), 0);
  CHECK_EQ(udp.send(static_cast<uint64_t>(sender), "to the group", 12, group,
                    h.port_of(static_cast<uint64_t>(member)), false),
           static_cast<int>(kUdpSent));
  CHECK(h.pump_until([&] { return !h.sink.datagrams.empty(); }));
  REQUIRE(h.sink.datagrams.size() == 1);
  CHECK_EQ(h.sink.datagrams[0].socket, static_cast<uint64_t>(member));
  CHECK_EQ(h.sink.datagrams[0].bytes, std::string("to the group"));
  CHECK_EQ(udp.set_membership(static_cast<uint64_t>(member), group, "127.0.0.1", false), 0);
}

#ifndef _WIN32  // no descriptor table to count on Windows
TEST(udp_close_releases_the_descriptor_and_the_loop_lets_go) {
  int before = testing::count_fds();
  {
    Harness h;
    REQUIRE(h.loop);
    size_t handles = h.loop->live_handles();
    int with_loop = testing::count_fds();
    int64_t a = h.open("127.0.0.1");
    int64_t b = h.open("::1");
    REQUIRE(a >= 0 && b >= 0);
    CHECK_EQ(h.loop->live_handles(), handles + 2);
    CHECK_EQ(testing::count_fds(), with_loop + 2);
    // Queued datagrams do not keep it open.
    CHECK_EQ(h.loop->udp().send(static_cast<uint64_t>(a), "x", 1, "127.0.0.1", 9, true),
             static_cast<int>(kUdpQueued));
    CHECK_EQ(h.loop->udp().close(static_cast<uint64_t>(a)), 0);
    CHECK_EQ(testing::count_fds(), with_loop + 1);
    CHECK_EQ(h.loop->live_handles(), handles + 1);
    h.loop->close_all();  // b too
    CHECK_EQ(testing::count_fds(), with_loop);
  }
  CHECK_EQ(testing::count_fds(), before);
}
#endif
