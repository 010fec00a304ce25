// Reactor loop tests: a real poller (the backend named by
// $NATIVE_REACTOR_BACKEND, default epoll; test/native-test.mjs runs them once
// per backend), loopback sockets only, every wait bounded by a deadline. The
// Harness and its TestSink are in loop_harness.h.
#ifndef _WIN32
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../loop.h"
#include "../platform.h"
#include "../poller.h"
#include "loop_harness.h"
#include "test_framework.h"
#include "test_sockets.h"

using namespace reactor;
using testing::backend_under_test;
using testing::Harness;
using testing::packed_of;
#ifndef _WIN32
using testing::count_fds;
#endif
using testing::raw_connect;
using testing::recv_now;
using testing::slot_of;
using testing::TestSink;

namespace {

std::string pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x);
  }
  return s;
}

struct Pair {
  uint64_t listener = 0;
  uint64_t client = 0;
  uint64_t server = 0;
  bool ok = false;
};

// Connects `client` (already started) to `listener` and waits for both the
// kAccepted and the kConnected record.
bool finish_pair(Harness& h, Pair* p, size_t mark) {
  const Record* accepted = nullptr;
  bool done = h.pump_until([&] {
    accepted = nullptr;
    for (size_t i = mark; i < h.sink.records.size(); i++) {
      const Record& r = h.sink.records[i];
      if (r.kind == kAccepted && static_cast<uint32_t>(r.a) == slot_of(p->listener)) {
        accepted = &r;
      }
    }
    return accepted != nullptr && h.has(kConnected, p->client);
  });
  if (!done) return false;
  p->server = packed_of(*accepted);
  p->ok = true;
  return true;
}

Pair tcp_pair(Harness& h, int64_t listener = -1) {
  Pair p;
  if (listener < 0) listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  if (listener < 0) return p;
  p.listener = listener;
  int port = h.local_port(p.listener);
  if (port <= 0) return p;
  size_t mark = h.sink.records.size();
  int64_t client = h.loop->connect_tcp("127.0.0.1", port);
  if (client < 0) return p;
  p.client = static_cast<uint64_t>(client);
  finish_pair(h, &p, mark);
  return p;
}

#ifndef _WIN32  // Unix-domain sockets: not supported on Windows (sockets.cc)
std::string temp_socket_path(const char* tag) {
  static int counter = 0;
  return "/tmp/native-reactor-test-" + std::to_string(getpid()) + "-" + tag + "-" +
         std::to_string(counter++) + ".sock";
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}
#endif

}  // namespace

// ============================================================================

TEST(loop_backend) {
  std::string error;
  CHECK(make_poller("no-such-backend", &error) == nullptr);
  CHECK_EQ(error, std::string("ERR_REACTOR_BACKEND_UNAVAILABLE"));
  std::vector<std::string> names = available_backends();
  REQUIRE(!names.empty());
  Harness h;
  REQUIRE(h.loop != nullptr);
  CHECK_EQ(std::string(h.loop->backend()), backend_under_test());
  CHECK(h.loop->pollable_fd() >= 0);
  CHECK_EQ(h.loop->live_handles(), 0u);
  CHECK_EQ(h.loop->poll(), 0);  // nothing registered: no events
  CHECK_EQ(h.sink.records.size(), 0u);
}

TEST(loop_tcp_accept_connect_and_addresses) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  // A first listener takes slot 0, so kAccepted's listener slot is non-trivial.
  int64_t other = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(other >= 0);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  CHECK(slot_of(p.listener) != slot_of(static_cast<uint64_t>(other)));
  CHECK_EQ(h.loop->close(static_cast<uint64_t>(other)), 1);
  CHECK_EQ(h.count(kConnected, p.client), 1u);
  CHECK_EQ(h.count(kAccepted, p.server), 1u);
  CHECK_EQ(h.find(kAccepted, p.server)->a, static_cast<int32_t>(slot_of(p.listener)));
  CHECK(!h.has(kConnected, p.server));  // accepted connections are open at once
  CHECK(p.client != p.server && p.server != p.listener && p.client != p.listener);
  CHECK_EQ(h.loop->live_handles(), 3u);

  SocketAddress listen_addr, client_local, client_peer, server_local, server_peer;
  REQUIRE(h.loop->address(p.listener, false, &listen_addr) == 0);
  REQUIRE(h.loop->address(p.client, false, &client_local) == 0);
  REQUIRE(h.loop->address(p.client, true, &client_peer) == 0);
  REQUIRE(h.loop->address(p.server, false, &server_local) == 0);
  REQUIRE(h.loop->address(p.server, true, &server_peer) == 0);
  CHECK_EQ(listen_addr.family, SocketAddress::kIPv4);
  CHECK_EQ(listen_addr.address, std::string("127.0.0.1"));
  CHECK(listen_addr.port > 0);
  CHECK_EQ(client_peer.port, listen_addr.port);
  CHECK_EQ(client_peer.address, std::string("127.0.0.1"));
  CHECK_EQ(server_local.port, listen_addr.port);
  CHECK_EQ(server_peer.port, client_local.port);
  CHECK(client_local.port != listen_addr.port);
  SocketAddress none;
  CHECK(h.loop->address(p.listener, true, &none) < 0);  // a listener has no peer
  // Options work on TCP streams and are refused for listeners.
  CHECK_EQ(h.loop->set_no_delay(p.client, false), 0);
  CHECK_EQ(h.loop->set_keep_alive(p.server, true, 30, 5, 3), 0);
  CHECK_EQ(h.loop->set_no_delay(p.listener, true), -EBADF);
}

TEST(loop_data_exact_bytes_and_echo) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  std::string head = "hello, ";
  std::string tail = pattern(256, 1) + std::string("\0\0zero", 6);
  iovec chunks[] = {{head.data(), head.size()}, {nullptr, 0}, {tail.data(), tail.size()}};
  CHECK_EQ(h.loop->write(p.client, chunks, 3), 0);  // everything went out at once
  CHECK_EQ(h.loop->queued_bytes(p.client), 0);
  std::string expected = head + tail;
  CHECK(h.pump_until([&] { return h.received_size(p.server) >= expected.size(); }));
  CHECK_EQ(h.received(p.server), expected);
  CHECK_EQ(h.sink.from_slabs(p.server), expected);
  CHECK_EQ(h.sink.bad_data_records, 0);

  // Echo back.
  CHECK_EQ(h.write(p.server, h.received(p.server)), 0);
  CHECK(h.pump_until([&] { return h.received_size(p.client) >= expected.size(); }));
  CHECK_EQ(h.received(p.client), expected);
  CHECK_EQ(h.sink.from_slabs(p.client), expected);
  CHECK(h.sink.pieces_disjoint());
  // A zero-length write is accepted and sends nothing.
  CHECK_EQ(h.write(p.client, std::string()), 0);
  CHECK(!h.has(kEof, p.server));
  CHECK(!h.has(kClosed, p.server));
}

TEST(loop_released_bytes_are_read_into_again) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  h.sink.release_bytes = true;
  size_t mark = h.sink.all_pieces.size();
  std::string first = pattern(100, 7);
  std::string second = pattern(50, 8);
  CHECK_EQ(h.write(p.client, first), 0);
  CHECK(h.pump_until([&] { return h.received_size(p.server) >= first.size(); }));
  CHECK_EQ(h.write(p.client, second), 0);
  CHECK(h.pump_until([&] { return h.received_size(p.server) >= first.size() + second.size(); }));
  // Bytes were right when delivered, and the second read reused the first one's place.
  CHECK_EQ(h.received(p.server), first + second);
  REQUIRE(h.sink.all_pieces.size() >= mark + 2);
  CHECK_EQ(h.sink.all_pieces[mark].offset, h.sink.all_pieces.back().offset);
  CHECK_EQ(h.sink.slabs.size(), 1u);
}

TEST(loop_kept_bytes_are_never_read_into_again) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  std::string first = pattern(100, 9);
  std::string second = pattern(50, 10);
  CHECK_EQ(h.write(p.client, first), 0);
  CHECK(h.pump_until([&] { return h.received_size(p.server) >= first.size(); }));
  CHECK_EQ(h.write(p.client, second), 0);
  CHECK(h.pump_until([&] { return h.received_size(p.server) >= first.size() + second.size(); }));
  CHECK_EQ(h.sink.from_slabs(p.server), first + second);
  CHECK(h.sink.pieces_disjoint());
}

TEST(loop_echo_from_inside_deliver) {
  // Like the binding: the sink calls back into the loop during a delivery.
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  int write_errors = 0;
  h.sink.hook = [&](const Record& r) {
    if (r.kind == kData && packed_of(r) == p.server) {
      iovec chunk{const_cast<uint8_t*>(h.sink.current_slab()) + r.a, static_cast<size_t>(r.b)};
      if (h.loop->write(p.server, &chunk, 1) < 0) write_errors++;
    }
  };
  std::string expected = pattern(300 * 1024, 2);
  for (size_t off = 0; off < expected.size(); off += 10000) {
    std::string piece = expected.substr(off, 10000);
    CHECK(h.write(p.client, piece) >= 0);
  }
  CHECK(h.pump_until([&] { return h.received_size(p.client) >= expected.size(); }));
  CHECK_EQ(write_errors, 0);
  CHECK(h.received(p.client) == expected);
  CHECK(h.sink.from_slabs(p.client) == expected);
  CHECK(h.sink.from_slabs(p.server) == expected);
  CHECK(h.sink.pieces_disjoint());
}

TEST(loop_end_half_close) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  CHECK_EQ(h.write(p.client, "last words"), 0);
  CHECK_EQ(h.loop->end(p.client), 0);
  CHECK_EQ(h.loop->end(p.client), 0);           // idempotent
  CHECK_EQ(h.write(p.client, "more"), -EPIPE);  // write after end
  CHECK(h.pump_until([&] { return h.has(kEof, p.server); }));
  CHECK_EQ(h.received(p.server), std::string("last words"));
  CHECK(!h.has(kClosed, p.server));
  CHECK(!h.has(kClosed, p.client));
  // Half-closed: the server can still talk to the client.
  CHECK_EQ(h.write(p.server, "reply after eof"), 0);
  CHECK(h.pump_until([&] { return h.received_size(p.client) >= 15; }));
  CHECK_EQ(h.received(p.client), std::string("reply after eof"));
  // The server ending too closes it outright (the peer had ended).
  CHECK_EQ(h.loop->end(p.server), 1);
  CHECK_EQ(h.write(p.server, "x"), -EBADF);
  CHECK(h.pump_until([&] { return h.has(kClosed, p.client); }));
  const Record* closed = h.find(kClosed, p.client);
  REQUIRE(closed != nullptr);
  CHECK_EQ(closed->a, 0);
  CHECK(!h.has(kEof, p.client));  // we had ended: the close is the whole story
  std::vector<int32_t> client_kinds = {kConnected, kData, kClosed};
  CHECK(h.kinds(p.client) == client_kinds);
  std::vector<int32_t> server_kinds = {kAccepted, kData, kEof};
  CHECK(h.kinds(p.server) == server_kinds);
  CHECK_EQ(h.loop->live_handles(), 1u);  // the listener
  CHECK_EQ(h.loop->queued_bytes(p.client), -EBADF);
}

TEST(loop_close_with_queued_data_flushes_then_closed) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  std::string big = pattern(4 << 20, 3);
  int64_t queued = h.write(p.client, big);
  CHECK(queued > 0);
  CHECK_EQ(h.loop->queued_bytes(p.client), queued);
  CHECK_EQ(h.loop->close(p.client), 0);  // a kClosed record will follow
  CHECK_EQ(h.write(p.client, "late"), -EPIPE);
  CHECK_EQ(h.loop->close(p.client), 0);  // still closing
  CHECK(h.pump_until([&] { return h.has(kClosed, p.client) && h.has(kEof, p.server); }));
  const Record* closed = h.find(kClosed, p.client);
  REQUIRE(closed != nullptr);
  CHECK_EQ(closed->a, 0);
  CHECK_EQ(h.count(kClosed, p.client), 1u);
  CHECK(h.received(p.server) == big);
  CHECK_EQ(h.received_size(p.server), big.size());
  std::vector<int32_t> server_kinds = {kAccepted, kData, kEof};
  CHECK(h.kinds(p.server) == server_kinds);
  // Now stale.
  CHECK_EQ(h.write(p.client, "x"), -EBADF);
  CHECK_EQ(h.loop->close(p.client), -EBADF);
}

TEST(loop_large_write_is_queued_and_arrives_intact) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  std::string big = pattern(4 << 20, 4);
  // Three chunks of odd sizes in one call.
  size_t a = 1000003, b = 1;
  iovec chunks[] = {{big.data(), a}, {big.data() + a, b}, {big.data() + a + b, big.size() - a - b}};
  // Until something is queued: how much a socket takes at once varies (Wine
  // and Windows may take all 4 MiB).
  int64_t queued = 0;
  std::string expected;
  for (int i = 0; i < 16 && queued == 0; i++) {
    queued = h.loop->write(p.client, chunks, 3);
    expected += big;
  }
  CHECK(queued > 0);
  CHECK(queued <= static_cast<int64_t>(big.size()));
  CHECK_EQ(h.loop->queued_bytes(p.client), queued);
  // Further writes go behind the queue, in order, even when the socket has
  // room again before the queue has drained.
  std::string extra = pattern(12345, 5);
  CHECK_EQ(h.write(p.client, extra), queued + static_cast<int64_t>(extra.size()));
  expected += extra;
  uint64_t deadline = Loop::now_ms() + 5000;
  int small_writes = 0;
  // A write before each step: one step may drain the whole queue (io_uring
  // receives up to 64 KiB per completion).
  while (h.loop->queued_bytes(p.client) > 0 && Loop::now_ms() < deadline) {
    int64_t before = h.loop->queued_bytes(p.client);
    std::string piece = pattern(100, static_cast<uint32_t>(100 + small_writes++));
    CHECK_EQ(h.write(p.client, piece), before + 100);
    expected += piece;
    h.step(1);
  }
  CHECK(small_writes > 0);
  CHECK(h.pump_until([&] { return h.received_size(p.server) >= expected.size(); }));
  CHECK(h.received(p.server) == expected);
  CHECK(h.sink.from_slabs(p.server) == expected);
  CHECK(h.sink.pieces_disjoint());
  CHECK(h.sink.slabs.size() > 1);
  CHECK_EQ(h.sink.bad_data_records, 0);
  CHECK(h.pump_until([&] { return h.loop->queued_bytes(p.client) == 0; }));
  CHECK(!h.has(kClosed, p.client));
}

TEST(loop_abort_resets_peer) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  CHECK_EQ(h.loop->abort(p.client), 1);
  CHECK_EQ(h.loop->abort(p.client), -EBADF);
  CHECK(h.pump_until([&] { return h.has(kClosed, p.server); }));
  const Record* closed = h.find(kClosed, p.server);
  REQUIRE(closed != nullptr);
  CHECK_EQ(closed->a, ECONNRESET);
  CHECK(!h.has(kEof, p.server));
  CHECK(!h.has(kClosed, p.client));  // abort reports nothing for itself
  CHECK_EQ(h.loop->live_handles(), 1u);
}

TEST(loop_write_to_closed_peer_reports_error) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  CHECK_EQ(h.loop->close(p.client), 1);  // idle: closed now, no record
  CHECK(h.pump_until([&] { return h.has(kEof, p.server); }));
  // Writing to a peer that has gone: a reset comes back and is reported as
  // kClosed with an errno, never as a signal or a silent hang.
  bool done = h.pump_until([&] {
    if (!h.has(kClosed, p.server)) h.write(p.server, "are you there?");
    return h.has(kClosed, p.server);
  });
  CHECK(done);
  const Record* closed = h.find(kClosed, p.server);
  REQUIRE(closed != nullptr);
  CHECK_MSG(closed->a == ECONNRESET || closed->a == EPIPE, "errno " << closed->a);
  CHECK(!h.has(kClosed, p.client));
}

TEST(loop_connect_refused) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  int port = h.local_port(listener);
  REQUIRE(port > 0);
  CHECK_EQ(h.loop->close(listener), 1);
  int64_t client = h.loop->connect_tcp("127.0.0.1", port);
  if (client < 0) {
    CHECK_EQ(client, -ECONNREFUSED);  // refused synchronously is acceptable too
    return;
  }
  uint64_t id = static_cast<uint64_t>(client);
  CHECK(h.pump_until([&] { return h.has(kClosed, id); }));
  const Record* closed = h.find(kClosed, id);
  REQUIRE(closed != nullptr);
  CHECK_EQ(closed->a, ECONNREFUSED);
  CHECK(!h.has(kConnected, id));
  CHECK_EQ(h.loop->live_handles(), 0u);
  CHECK_EQ(h.write(id, "x"), -EBADF);
}

TEST(loop_invalid_arguments) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  CHECK_EQ(h.loop->connect_tcp("not-an-address", 80), -EINVAL);
  CHECK_EQ(h.loop->listen_tcp("127.0.0.1", 70000, ListenOptions{}), -EINVAL);
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  int port = h.local_port(listener);
  CHECK_EQ(h.loop->listen_tcp("127.0.0.1", port, ListenOptions{}), -EADDRINUSE);
#ifdef _WIN32
  // Unix-domain sockets are not supported there, and say so.
  CHECK_EQ(h.loop->listen_unix("reactor.sock", ListenOptions{}), -EAFNOSUPPORT);
  CHECK_EQ(h.loop->connect_unix("reactor.sock"), -EAFNOSUPPORT);
#else
  CHECK_EQ(h.loop->listen_unix("", ListenOptions{}), -ENAMETOOLONG);
  CHECK_EQ(h.loop->listen_unix(std::string(200, 'x'), ListenOptions{}), -ENAMETOOLONG);
  std::string missing = temp_socket_path("missing");
  ::unlink(missing.c_str());
  int64_t c = h.loop->connect_unix(missing);
  if (c >= 0) {
    CHECK(h.pump_until([&] { return h.has(kClosed, static_cast<uint64_t>(c)); }));
  } else {
    CHECK_EQ(c, -ENOENT);
  }
#endif
  CHECK_EQ(h.loop->live_handles(), 1u);
}

TEST(loop_stale_ids_return_ebadf) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  CHECK_EQ(h.loop->close(p.client), 1);  // nothing queued: closed at once
  iovec chunk{const_cast<char*>("x"), 1};
  SocketAddress address;
  CHECK_EQ(h.loop->write(p.client, &chunk, 1), -EBADF);
  CHECK_EQ(h.loop->close(p.client), -EBADF);
  CHECK_EQ(h.loop->end(p.client), -EBADF);
  CHECK_EQ(h.loop->abort(p.client), -EBADF);
  CHECK_EQ(h.loop->queued_bytes(p.client), -EBADF);
  CHECK_EQ(h.loop->set_no_delay(p.client, true), -EBADF);
  CHECK_EQ(h.loop->set_keep_alive(p.client, true, 1, 1, 1), -EBADF);
  CHECK_EQ(h.loop->address(p.client, false, &address), -EBADF);
  // A new connection takes the freed slot with a new generation; the old id
  // still reaches nothing.
  Pair q = tcp_pair(h, static_cast<int64_t>(p.listener));
  REQUIRE(q.ok);
  CHECK(slot_of(q.client) == slot_of(p.client) || slot_of(q.server) == slot_of(p.client));
  CHECK_EQ(h.loop->write(p.client, &chunk, 1), -EBADF);
  CHECK_EQ(h.loop->close(p.client), -EBADF);
  CHECK_EQ(h.loop->write(q.client, &chunk, 1), 0);
  // Listeners are not streams.
  CHECK_EQ(h.loop->write(p.listener, &chunk, 1), -EBADF);
  CHECK_EQ(h.loop->end(p.listener), -EBADF);
  CHECK_EQ(h.loop->close(p.listener), 1);
  CHECK_EQ(h.loop->close(p.listener), -EBADF);
  // Ids never issued.
  CHECK_EQ(h.loop->close(Id{4000, 0}.packed()), -EBADF);
  CHECK_EQ(h.loop->write(Id{slot_of(q.client), 77}.packed(), &chunk, 1), -EBADF);
  // The existing connection survived its listener.
  CHECK(h.pump_until([&] { return h.received_size(q.server) >= 1; }));
}

TEST(loop_write_and_end_while_connecting) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  Pair p;
  p.listener = listener;
  size_t mark = h.sink.records.size();
  int64_t client = h.loop->connect_tcp("127.0.0.1", h.local_port(p.listener));
  REQUIRE(client >= 0);
  p.client = static_cast<uint64_t>(client);
  std::string early = "sent before the connect completed";
  CHECK_EQ(h.write(p.client, early), static_cast<int64_t>(early.size()));  // queued
  CHECK_EQ(h.loop->end(p.client), 0);
  REQUIRE(finish_pair(h, &p, mark));
  CHECK(h.pump_until([&] { return h.has(kEof, p.server); }));
  CHECK_EQ(h.received(p.server), early);
  std::vector<int32_t> server_kinds = {kAccepted, kData, kEof};
  CHECK(h.kinds(p.server) == server_kinds);
}

TEST(loop_close_while_connecting_keeps_queued_writes) {
  // Loop::close is documented as "closes once the queue is flushed" (and
  // Transport.close as "closes after everything queued is sent"). Bytes
  // written while the connect is in flight must therefore still arrive.
  Harness h;
  REQUIRE(h.loop != nullptr);
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  int64_t client = h.loop->connect_tcp("127.0.0.1", h.local_port(listener));
  REQUIRE(client >= 0);
  uint64_t id = static_cast<uint64_t>(client);
  std::string early = "GET / HTTP/1.0\r\n\r\n";
  CHECK_EQ(h.write(id, early), static_cast<int64_t>(early.size()));
  CHECK_EQ(h.loop->close(id), 0);  // data is queued: a kClosed record must follow
  uint64_t server = 0;
  h.pump_until([&] {
    for (const Record& r : h.sink.records) {
      if (r.kind == kAccepted) server = packed_of(r);
    }
    return server != 0 && (h.has(kEof, server) || h.has(kClosed, server));
  });
  CHECK(server != 0);
  CHECK_EQ(h.received(server), early);
}

TEST(loop_timers_fire_in_order) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  std::vector<std::pair<uint64_t, uint64_t>> fired;  // id, time
  h.sink.hook = [&](const Record& r) {
    if (r.kind == kTimer) fired.push_back({packed_of(r), Loop::now_ms()});
  };
  uint64_t t0 = Loop::now_ms();
  int64_t a = h.loop->timer_start(300);
  int64_t b = h.loop->timer_start(100);
  int64_t c = h.loop->timer_start(200);
  int64_t d = h.loop->timer_start(100);
  int64_t e = h.loop->timer_start(250);
  int64_t f = h.loop->timer_start(400);
  int64_t g = h.loop->timer_start(100000);
  REQUIRE(a >= 0 && b >= 0 && c >= 0 && d >= 0 && e >= 0 && f >= 0 && g >= 0);
  CHECK_EQ(h.loop->pending_timers(), 7u);
  CHECK(h.loop->next_timer_deadline() >= t0 + 100);
  CHECK(h.loop->next_timer_deadline() <= Loop::now_ms() + 101);  // rounded up, never early
  CHECK(h.loop->timer_cancel(static_cast<uint64_t>(e)));
  CHECK(!h.loop->timer_cancel(static_cast<uint64_t>(e)));
  CHECK(!h.loop->timer_reset(static_cast<uint64_t>(e), 10));
  CHECK(h.loop->timer_reset(static_cast<uint64_t>(f), 30));  // now first
  CHECK_EQ(h.loop->pending_timers(), 6u);
  h.loop->run_timers();
  CHECK_EQ(h.count_kind(kTimer), 0u);  // nothing due yet
  CHECK(h.pump_until([&] { return fired.size() >= 5; }, 3000));
  h.pump_for(30);
  std::vector<uint64_t> order;
  for (auto& entry : fired) order.push_back(entry.first);
  std::vector<uint64_t> expected = {static_cast<uint64_t>(f), static_cast<uint64_t>(b),
                                    static_cast<uint64_t>(d), static_cast<uint64_t>(c),
                                    static_cast<uint64_t>(a)};
  CHECK(order == expected);
  // None fired early.
  std::map<uint64_t, uint64_t> delays = {{static_cast<uint64_t>(a), 300},
                                         {static_cast<uint64_t>(b), 100},
                                         {static_cast<uint64_t>(c), 200},
                                         {static_cast<uint64_t>(d), 100},
                                         {static_cast<uint64_t>(f), 30}};
  for (auto& entry : fired) {
    CHECK_MSG(entry.second >= t0 + delays[entry.first],
              "timer fired after " << entry.second - t0 << " ms, delay " << delays[entry.first]);
  }
  // Fired timers are stale; the long one is still pending.
  CHECK(!h.loop->timer_cancel(static_cast<uint64_t>(b)));
  CHECK(!h.loop->timer_reset(static_cast<uint64_t>(a), 5));
  CHECK_EQ(h.loop->pending_timers(), 1u);
  CHECK(h.loop->timer_cancel(static_cast<uint64_t>(g)));
  CHECK_EQ(h.loop->pending_timers(), 0u);
  CHECK_EQ(h.loop->next_timer_deadline(), Loop::kNever);
  CHECK_EQ(h.loop->live_handles(), 0u);  // timers are not handles
  // A zero-delay timer is due at once.
  int64_t z = h.loop->timer_start(0);
  h.loop->run_timers();
  CHECK(!fired.empty() && fired.back().first == static_cast<uint64_t>(z));
}

// Windows: no Unix-domain sockets (sockets.cc), and no descriptor table to
// count open fds in.
#ifndef _WIN32
TEST(loop_unix_round_trip_and_unlink) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  std::string path = temp_socket_path("unix");
  ::unlink(path.c_str());
  int64_t listener = h.loop->listen_unix(path, ListenOptions{});
  REQUIRE(listener >= 0);
  CHECK(path_exists(path));
  // A second listener on the same path fails and must not unlink the first's.
  CHECK_EQ(h.loop->listen_unix(path, ListenOptions{}), -EADDRINUSE);
  CHECK(path_exists(path));
  SocketAddress address;
  CHECK_EQ(h.loop->address(listener, false, &address), 0);
  CHECK_EQ(address.family, SocketAddress::kUnix);
  CHECK_EQ(address.address, path);

  Pair p;
  p.listener = listener;
  size_t mark = h.sink.records.size();
  int64_t client = h.loop->connect_unix(path);
  REQUIRE(client >= 0);
  p.client = static_cast<uint64_t>(client);
  REQUIRE(finish_pair(h, &p, mark));
  CHECK_EQ(h.loop->set_no_delay(p.client, true), 0);  // a no-op for Unix sockets
  std::string ping = pattern(100000, 6), pong = "pong";
  CHECK(h.write(p.client, ping) >= 0);
  CHECK(h.pump_until([&] { return h.received_size(p.server) >= ping.size(); }));
  CHECK(h.received(p.server) == ping);
  CHECK_EQ(h.write(p.server, pong), 0);
  CHECK(h.pump_until([&] { return h.received_size(p.client) >= pong.size(); }));
  CHECK_EQ(h.received(p.client), pong);

  CHECK_EQ(h.loop->close(p.listener), 1);
  CHECK(!path_exists(path));  // unlinked on close
  // Established connections outlive the listener.
  CHECK_EQ(h.write(p.client, "still here"), 0);
  CHECK(h.pump_until([&] { return h.received_size(p.server) >= ping.size() + 10; }));
  CHECK_EQ(h.loop->end(p.client), 0);
  CHECK(h.pump_until([&] { return h.has(kEof, p.server); }));

  // close_all unlinks too; a stream in the listener's old slot doesn't.
  std::string path2 = temp_socket_path("unix");
  ::unlink(path2.c_str());
  int64_t listener2 = h.loop->listen_unix(path2, ListenOptions{});
  REQUIRE(listener2 >= 0);
  CHECK(path_exists(path2));
  h.loop->close_all();
  CHECK(!path_exists(path2));
  CHECK_EQ(h.loop->live_handles(), 0u);
  ::unlink(path.c_str());
  ::unlink(path2.c_str());
}

TEST(loop_close_all_releases_every_fd) {
  int before = count_fds();
  REQUIRE(before > 0);
  std::string path = temp_socket_path("closeall");
  {
    Harness h;
    REQUIRE(h.loop != nullptr);
    int with_loop = count_fds();
    CHECK(with_loop > before);  // the poller's fds
    Pair p1 = tcp_pair(h);
    Pair p2 = tcp_pair(h, static_cast<int64_t>(p1.listener));
    REQUIRE(p1.ok && p2.ok);
    ::unlink(path.c_str());
    int64_t unix_listener = h.loop->listen_unix(path, ListenOptions{});
    REQUIRE(unix_listener >= 0);
    int64_t unix_client = h.loop->connect_unix(path);
    REQUIRE(unix_client >= 0);
    int64_t connecting = h.loop->connect_tcp("127.0.0.1", h.local_port(p1.listener));
    REQUIRE(connecting >= 0);
    // A queued write and a timer too.
    CHECK(h.write(p1.client, pattern(4 << 20, 7)) > 0);
    REQUIRE(h.loop->timer_start(100000) >= 0);
    h.pump_for(20);
    CHECK(count_fds() >= with_loop + 7);
    size_t records = h.sink.records.size();
    h.loop->close_all();
    CHECK_EQ(h.loop->live_handles(), 0u);
    CHECK_EQ(h.sink.records.size(), records);  // no records
    CHECK(!path_exists(path));
    CHECK_EQ(h.loop->queued_bytes(p1.client), -EBADF);
    h.pump_for(20);  // nothing left to report on
    CHECK_EQ(h.count_kind(kClosed), 0u);
    // After a wake-up: io_uring may hold a connection its multishot accept
    // took before the cancel, closed when that completion is reaped.
    CHECK_EQ(count_fds(), with_loop);
    // The loop remains usable.
    Pair p3 = tcp_pair(h);
    CHECK(p3.ok);
  }
  ::unlink(path.c_str());
  CHECK_EQ(count_fds(), before);  // the destructor closes the rest
}
#endif

TEST(loop_small_slabs_and_record_buffer) {
  // Tiny slabs, tiny reads and a two-record buffer: records are delivered mid
  // batch and slabs change often; every byte must still land intact in a
  // region that is never reused.
  LoopLimits limits;
  limits.max_read = 1000;
  Harness h(2, limits, 4096);
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  Pair q = tcp_pair(h, static_cast<int64_t>(p.listener));
  REQUIRE(p.ok && q.ok);
  std::string one = pattern(200000, 8), two = pattern(150000, 9);
  CHECK(h.write(p.client, one) >= 0);
  CHECK(h.write(q.client, two) >= 0);
  CHECK(h.pump_until([&] {
    return h.received_size(p.server) >= one.size() && h.received_size(q.server) >= two.size();
  }));
  CHECK(h.received(p.server) == one);
  CHECK(h.received(q.server) == two);
  CHECK(h.sink.from_slabs(p.server) == one);
  CHECK(h.sink.from_slabs(q.server) == two);
  CHECK(h.sink.pieces_disjoint());
  CHECK_EQ(h.sink.bad_data_records, 0);
  CHECK(h.sink.slabs.size() >= (one.size() + two.size()) / 4096);
  for (const TestSink::Piece& piece : h.sink.all_pieces) CHECK(piece.length <= 1000);
  CHECK_EQ(h.sink.empty_deliveries, 0u);
}

// Needs a descriptor limit to run into (RLIMIT_NOFILE); Windows has none a
// process can tighten.
#ifndef _WIN32
namespace {

// Lowers RLIMIT_NOFILE to `headroom` above the lowest free descriptor (probed
// by duplicating `fd`) until restore() or the end of the scope. Set it before
// a listener is watched: io_uring's accept keeps the limit of when it was
// submitted.
class TightFdLimit {
 public:
  TightFdLimit(int fd, int headroom) {
    if (getrlimit(RLIMIT_NOFILE, &saved_) != 0) return;
    int lowest_free = ::dup(fd);
    if (lowest_free < 0) return;
    ::close(lowest_free);
    rlimit tight = saved_;
    tight.rlim_cur = static_cast<rlim_t>(lowest_free + headroom);
    set_ = setrlimit(RLIMIT_NOFILE, &tight) == 0;
  }
  ~TightFdLimit() { restore(); }
  bool ok() const { return set_; }
  void restore() {
    if (set_) setrlimit(RLIMIT_NOFILE, &saved_);
    set_ = false;
  }

 private:
  rlimit saved_{};
  bool set_ = false;
};

}  // namespace

TEST(loop_accept_exhaustion_backs_off_then_serves_the_waiting_clients) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  std::vector<int> raw;
  for (int i = 0; i < 3; i++) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    raw.push_back(fd);
  }
  // Descriptors run out for real: a low limit, then the table filled up to it.
  TightFdLimit limit(raw[0], 8);
  REQUIRE(limit.ok());
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  int port = h.local_port(listener);
  h.loop->prepare_wait();
  std::vector<int> filler;
  for (int fd; (fd = ::dup(raw[0])) >= 0;) filler.push_back(fd);
  CHECK_EQ(errno, EMFILE);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int fd : raw) {
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  uint64_t wakes_before = h.loop->stats().loop_iterations;
  h.pump_for(300);
  uint64_t emfile = h.loop->stats().emfile;
  size_t accepted_while_tight = h.count_kind(kAccepted);
  bool clients_waiting = true;  // none was closed: they wait in the backlog
  for (int fd : raw) {
    char byte;
    if (recv_now(fd, &byte, 1) != -EAGAIN) clients_waiting = false;
  }
  for (int fd : filler) ::close(fd);
  limit.restore();
  // Backoff of 50, 100, 200 ms: a handful of attempts, not one per wake-up.
  CHECK(emfile >= 1);
  CHECK(emfile <= 4);
  CHECK(h.loop->stats().loop_iterations - wakes_before < 200);
  CHECK_EQ(accepted_while_tight, 0u);
  CHECK(clients_waiting);
  // With descriptors available again, the waiting clients are served.
  CHECK(h.pump_until([&] { return h.count_kind(kAccepted) == 3; }, 3000));
  for (int fd : raw) close_socket(fd);
}
#endif

TEST(loop_end_with_queued_data_shuts_down_after_flush) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  std::string big = pattern(4 << 20, 10);
  CHECK(h.write(p.client, big) > 0);
  CHECK_EQ(h.loop->end(p.client), 0);
  CHECK(h.loop->queued_bytes(p.client) > 0);  // end waits for the queue
  CHECK(h.pump_until([&] { return h.has(kEof, p.server); }));
  CHECK(h.received(p.server) == big);  // every byte before the EOF
  std::vector<int32_t> server_kinds = {kAccepted, kData, kEof};
  CHECK(h.kinds(p.server) == server_kinds);
  CHECK(!h.has(kClosed, p.client));  // still reading
  // The server answers and ends: the client gets the data, then kClosed(0).
  CHECK_EQ(h.write(p.server, "bye"), 0);
  CHECK_EQ(h.loop->end(p.server), 1);
  CHECK(h.pump_until([&] { return h.has(kClosed, p.client); }));
  CHECK_EQ(h.received(p.client), std::string("bye"));
  const Record* closed = h.find(kClosed, p.client);
  REQUIRE(closed != nullptr);
  CHECK_EQ(closed->a, 0);
  CHECK_EQ(h.loop->live_handles(), 1u);
}

TEST(loop_abort_drops_queued_data) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  std::string big = pattern(4 << 20, 11);
  CHECK(h.write(p.client, big) > 0);
  CHECK_EQ(h.loop->abort(p.client), 1);
  CHECK(h.pump_until([&] { return h.has(kClosed, p.server); }));
  const Record* closed = h.find(kClosed, p.server);
  REQUIRE(closed != nullptr);
  CHECK_EQ(closed->a, ECONNRESET);
  CHECK(h.received_size(p.server) < big.size());
  CHECK(!h.has(kClosed, p.client));
  CHECK_EQ(h.loop->live_handles(), 1u);
}

TEST(loop_abort_from_inside_delivery_stops_reads) {
  // The sink aborts the receiving connection on its first data record while
  // the loop is in the middle of reading (tiny slabs and a one-record buffer
  // make deliveries happen inside the read path).
  LoopLimits limits;
  limits.max_read = 1000;
  Harness h(1, limits, 4096);
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  size_t abort_index = SIZE_MAX;
  int abort_result = 0;
  h.sink.hook = [&](const Record& r) {
    if (r.kind == kData && packed_of(r) == p.server && abort_index == SIZE_MAX) {
      abort_index = h.sink.records.size() - 1;
      abort_result = h.loop->abort(p.server);
    }
  };
  CHECK(h.write(p.client, pattern(100000, 12)) >= 0);
  CHECK(h.pump_until([&] { return h.has(kClosed, p.client); }));
  REQUIRE(abort_index != SIZE_MAX);
  CHECK_EQ(abort_result, 1);
  size_t later = 0;
  for (size_t i = abort_index + 1; i < h.sink.records.size(); i++) {
    later += packed_of(h.sink.records[i]) == p.server;
  }
  CHECK_EQ(later, 0u);  // nothing more for the aborted connection
  const Record* closed = h.find(kClosed, p.client);
  REQUIRE(closed != nullptr);
  CHECK_EQ(closed->a, ECONNRESET);
  CHECK_EQ(h.sink.bad_data_records, 0);
}

TEST(loop_listener_closed_during_accept_batch) {
  // Five clients wait in the backlog; the sink closes the listener on the
  // first kAccepted. The loop must stop accepting at once; the clients left in
  // the backlog are reset by the kernel.
  Harness h(1);
  REQUIRE(h.loop != nullptr);
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  int port = h.local_port(listener);
  std::vector<int> raw;
  for (int i = 0; i < 5; i++) {
    raw.push_back(raw_connect(port));
    REQUIRE(raw.back() >= 0);
  }
  int close_result = 0;
  bool closed_listener = false;
  h.sink.hook = [&](const Record& r) {
    if (r.kind == kAccepted && !closed_listener) {
      closed_listener = true;
      close_result = h.loop->close(listener);
    }
  };
  CHECK(h.pump_until([&] { return closed_listener; }));
  h.pump_for(20);
  CHECK_EQ(close_result, 1);
  size_t accepted = h.count_kind(kAccepted);
  CHECK(accepted >= 1);
  CHECK(accepted <= 2);  // at most the one accepted while the first was pending delivery
  CHECK_EQ(h.loop->live_handles(), accepted);
  // Clients that were never accepted learn of it (reset), the others don't.
  size_t reset = 0;
  for (int fd : raw) {
    testing::readable_within(fd, 200);
    char byte;
    if (recv_now(fd, &byte, 1) == -ECONNRESET) reset++;
  }
  CHECK_EQ(reset, raw.size() - accepted);
  for (int fd : raw) close_socket(fd);
}

// ============================================================================
// Flow control, idle deadlines and admission
// ============================================================================

namespace {

// Whether the peer closed fd: 0 = not yet, 1 = FIN, 2 = reset.
int peer_state(int fd) {
  char buffer[4096];
  for (;;) {
    ssize_t n = recv_now(fd, buffer, sizeof buffer);
    if (n > 0) continue;
    if (n == 0) return 1;
    return n == -ECONNRESET ? 2 : 0;
  }
}

std::vector<uint64_t> accepted_ids(const Harness& h) {
  std::vector<uint64_t> ids;
  for (const Record& r : h.sink.records) {
    if (r.kind == kAccepted) ids.push_back(packed_of(r));
  }
  return ids;
}

// A TCP listener on loopback with the given policy and defaults, watched.
struct Configured {
  uint64_t listener = 0;
  int port = -1;
};

Configured configured_listener(Harness& h, const AdmissionPolicy& policy,
                               const ConnDefaults& defaults = ConnDefaults{}) {
  Configured out;
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  if (listener < 0) return out;
  out.listener = listener;
  if (h.loop->configure_listener(out.listener, policy, defaults) != 0) return out;
  out.port = h.local_port(out.listener);
  h.loop->prepare_wait();
  return out;
}

}  // namespace

TEST(loop_cap_parks_in_fifo_order_and_serves_bytes_intact) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  AdmissionPolicy policy;
  policy.max_connections = 2;
  Configured server = configured_listener(h, policy);
  REQUIRE(server.port > 0);
  int port = server.port;
  uint64_t listener = server.listener;
  std::vector<int> clients;
  std::vector<std::string> sent;
  for (int i = 0; i < 6; i++) {
    int fd = raw_connect(port);
    REQUIRE(fd >= 0);
    clients.push_back(fd);
    sent.push_back(pattern(1000 + i, static_cast<uint32_t>(i)));
    REQUIRE(::send(native_socket(fd), sent.back().data(), sent.back().size(), 0) ==
            static_cast<ssize_t>(sent.back().size()));
    h.pump_for(20);  // arrival order is connect order
  }
  CHECK(h.pump_until([&] { return h.loop->queued_connections() == 4; }));
  CHECK_EQ(accepted_ids(h).size(), 2u);
  uint32_t open = 0, queued = 0;
  CHECK_EQ(h.loop->listener_counts(listener, &open, &queued), 0);
  CHECK_EQ(open, 2u);
  CHECK_EQ(queued, 4u);
  // Close served connections one at a time: the next in line is served, and
  // gets the bytes it sent while parked.
  for (size_t served = 0; served < 6; served++) {
    std::vector<uint64_t> ids = accepted_ids(h);
    REQUIRE(ids.size() > served);
    uint64_t id = ids[served];
    CHECK(h.pump_until([&] { return h.received_size(id) == sent[served].size(); }));
    CHECK(h.received(id) == sent[served]);
    CHECK_EQ(h.loop->close(id), 1);
    h.loop->prepare_wait();  // serves the next parked connection
  }
  CHECK_EQ(h.loop->stats().rejected, 0u);
  CHECK_EQ(h.loop->stats().accepted, 6u);
  for (int fd : clients) close_socket(fd);
}

TEST(loop_stopped_listener_serves_its_connections_and_leaves_new_clients_in_the_backlog) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Configured server = configured_listener(h, AdmissionPolicy{});
  REQUIRE(server.port > 0);
  int early = raw_connect(server.port);
  REQUIRE(early >= 0);
  CHECK(h.pump_until([&] { return accepted_ids(h).size() == 1; }));
  uint64_t served = accepted_ids(h)[0];
  CHECK_EQ(h.loop->stop_accepting(server.listener), 0);
  CHECK_EQ(h.loop->stop_accepting(served), -EBADF);  // a connection is no listener
  CHECK_EQ(h.loop->connections_of(server.listener), 1u);
  int late = raw_connect(server.port);  // completes in the kernel: the socket still listens
  REQUIRE(late >= 0);
  const std::string sent = pattern(500, 7);
  REQUIRE(::send(native_socket(early), sent.data(), sent.size(), 0) ==
          static_cast<ssize_t>(sent.size()));
  CHECK(h.pump_until([&] { return h.received_size(served) == sent.size(); }));
  CHECK(h.received(served) == sent);
  h.pump_for(50);
  CHECK_EQ(h.loop->stats().accepted, 1u);
  // Its connections are counted after the listener closed too, until they end.
  CHECK_EQ(h.loop->close(server.listener), 1);
  CHECK_EQ(h.loop->connections_of(server.listener), 1u);
  CHECK_EQ(h.loop->close(served), 1);
  CHECK_EQ(h.loop->connections_of(server.listener), 0u);
  close_socket(early);
  close_socket(late);
}

TEST(loop_queue_limit_rejects_with_canned_bytes_then_a_clean_close) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  AdmissionPolicy policy;
  policy.max_connections = 1;
  policy.queue_limit = 1;
  policy.overflow_bytes = "HTTP/1.1 503 Service Unavailable\r\n\r\n";
  Configured server = configured_listener(h, policy);
  REQUIRE(server.port > 0);
  int port = server.port;
  int served = raw_connect(port), parked = raw_connect(port), rejected = raw_connect(port);
  REQUIRE(served >= 0 && parked >= 0 && rejected >= 0);
  std::string request = "GET / HTTP/1.1\r\n\r\n";
  ::send(native_socket(rejected), request.data(), request.size(),
         0);  // unread: must not turn into a reset
  std::string reply;
  bool closed = h.pump_until([&] {
    char buffer[256];
    ssize_t n = recv_now(rejected, buffer, sizeof buffer);
    if (n > 0) reply.append(buffer, static_cast<size_t>(n));
    return n == 0;
  });
  CHECK(closed);
  CHECK(reply == policy.overflow_bytes);
  CHECK_EQ(h.loop->stats().rejected, 1u);
  CHECK_EQ(h.loop->queued_connections(), 1u);
  CHECK_EQ(peer_state(parked), 0);  // still waiting
  close_socket(rejected);
  close_socket(served);
  close_socket(parked);
}

TEST(loop_parked_connection_abandoned_by_its_client_is_discarded) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  AdmissionPolicy policy;
  policy.max_connections = 1;
  Configured server = configured_listener(h, policy);
  REQUIRE(server.port > 0);
  int port = server.port;
  int served = raw_connect(port), leaving = raw_connect(port), staying = raw_connect(port);
  REQUIRE(served >= 0 && leaving >= 0 && staying >= 0);
  CHECK(h.pump_until([&] { return h.loop->queued_connections() == 2; }));
  close_socket(leaving);
  CHECK(h.pump_until([&] { return h.loop->stats().abandoned == 1; }));
  CHECK_EQ(h.loop->queued_connections(), 1u);
  // The slot frees: the client that stayed is served, not the one that left.
  std::vector<uint64_t> ids = accepted_ids(h);
  REQUIRE(ids.size() == 1u);
  CHECK_EQ(h.loop->close(ids[0]), 1);
  h.loop->prepare_wait();
  REQUIRE(accepted_ids(h).size() == 2u);
  uint64_t next = accepted_ids(h)[1];
  ::send(native_socket(staying), "hi", 2, 0);
  CHECK(h.pump_until([&] { return h.received(next) == "hi"; }));
  close_socket(served);
  close_socket(staying);
}

TEST(loop_queue_timeout_rejects_the_waiting_client) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  AdmissionPolicy policy;
  policy.max_connections = 1;
  policy.queue_timeout_ms = 100;
  policy.overflow = Overflow::kReset;
  Configured server = configured_listener(h, policy);
  REQUIRE(server.port > 0);
  int port = server.port;
  int served = raw_connect(port);
  uint64_t start = Loop::now_ms();
  int waiting = raw_connect(port);
  REQUIRE(served >= 0 && waiting >= 0);
  CHECK(h.pump_until([&] { return peer_state(waiting) == 2; }, 2000));
  CHECK(Loop::now_ms() - start >= 100);
  CHECK_EQ(h.loop->stats().queue_timeouts, 1u);
  CHECK_EQ(h.loop->stats().rejected, 1u);
  CHECK_EQ(h.loop->queued_connections(), 0u);
  close_socket(served);
  close_socket(waiting);
}

TEST(loop_idle_connection_is_reaped_after_its_timeout_and_reported) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  ConnDefaults defaults;
  defaults.idle_ms = 150;
  Configured server = configured_listener(h, AdmissionPolicy{}, defaults);
  REQUIRE(server.port > 0);
  int port = server.port;
  int idle = raw_connect(port), busy = raw_connect(port);
  REQUIRE(idle >= 0 && busy >= 0);
  ::send(native_socket(idle), "x", 1, 0);
  uint64_t last_byte = Loop::now_ms();
  uint64_t fin_at = 0;
  bool fin = h.pump_until(
      [&] {
        testing::send_now(busy, "y", 1);  // keeps its clock from running out
        if (peer_state(idle) != 1) return false;
        fin_at = Loop::now_ms();
        return true;
      },
      2000);
  CHECK(fin);
  CHECK(fin_at - last_byte >= 150);
  CHECK(fin_at - last_byte < 400);
  close_socket(idle);  // the peer closes in its grace period: reported as an idle timeout
  CHECK(h.pump_until([&] {
    for (const Record& r : h.sink.records) {
      if (r.kind == kClosed && r.b == kReasonIdle) return true;
    }
    return false;
  }));
  CHECK_EQ(peer_state(busy), 0);
  CHECK_EQ(h.loop->stats().reaped, 1u);
  close_socket(busy);
}

// More distinct timeouts than the idle lists hold: the rest wait in the heap,
// and every connection is still ended after its own timeout, shortest first.
TEST(loop_idle_connections_of_many_timeouts_end_in_timeout_order) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  constexpr int kTimeouts = 11;
  int peers[kTimeouts];
  uint64_t ended_at[kTimeouts] = {};
  for (int i = 0; i < kTimeouts; i++) {
    ConnDefaults defaults;
    defaults.idle_ms = static_cast<uint32_t>(300 - 20 * i);  // later listeners, shorter timeouts
    Configured server = configured_listener(h, AdmissionPolicy{}, defaults);
    REQUIRE(server.port > 0);
    peers[i] = raw_connect(server.port);
    REQUIRE(peers[i] >= 0);
  }
  uint64_t start = Loop::now_ms();
  int ended = 0;
  std::vector<int> order;
  CHECK(h.pump_until(
      [&] {
        for (int i = 0; i < kTimeouts; i++) {
          if (ended_at[i] != 0 || peer_state(peers[i]) != 1) continue;
          ended_at[i] = Loop::now_ms();
          order.push_back(i);
          ended++;
        }
        return ended == kTimeouts;
      },
      3000));
  for (int i = 0; i < kTimeouts; i++) {
    CHECK(ended_at[i] - start >= static_cast<uint64_t>(300 - 20 * i));
    CHECK(ended_at[i] - start < static_cast<uint64_t>(300 - 20 * i + 250));
  }
  // 20 ms apart: shortest first, give or take a neighbour on a busy machine.
  REQUIRE(order.size() == static_cast<size_t>(kTimeouts));
  CHECK(order.front() >= kTimeouts - 2);
  CHECK(order.back() <= 1);
  CHECK_EQ(h.loop->stats().reaped, static_cast<uint64_t>(kTimeouts));
  for (int peer : peers) close_socket(peer);
}

TEST(loop_idle_connection_whose_peer_stays_past_the_grace_is_reported_as_grace_expired) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  ConnDefaults defaults;
  defaults.idle_ms = 100;
  defaults.limits.grace_ms = 100;
  Configured server = configured_listener(h, AdmissionPolicy{}, defaults);
  REQUIRE(server.port > 0);
  int stays = raw_connect(server.port);  // reads our FIN, never closes
  REQUIRE(stays >= 0);
  int32_t reason = -1;
  CHECK(h.pump_until(
      [&] {
        for (const Record& r : h.sink.records) {
          if (r.kind == kClosed) reason = r.b;
        }
        return reason >= 0;
      },
      2000));
  CHECK_EQ(reason, static_cast<int32_t>(kReasonGraceExpired));
  CHECK_EQ(h.loop->stats().reaped, 1u);
  close_socket(stays);
}

TEST(loop_pause_stops_reads_and_resume_delivers_every_byte_in_order) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  CHECK_EQ(h.loop->set_reading(p.server, false), 0);
  std::string bytes = pattern(16 * 1024 * 1024, 5);
  CHECK(h.write(p.client, bytes) >= 0);
  h.pump_for(100);
  CHECK_EQ(h.received_size(p.server), 0u);
  CHECK(h.loop->queued_bytes(p.client) > 0);  // the kernel pushed back
  CHECK_EQ(h.loop->set_reading(p.server, true), 0);
  CHECK(h.pump_until([&] { return h.received_size(p.server) == bytes.size(); }));
  CHECK(h.received(p.server) == bytes);
}

TEST(loop_drain_record_after_the_queue_falls_to_the_low_watermark) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  CHECK_EQ(h.loop->set_write_limits(p.server, 64 * 1024, 16 * 1024, 64 * 1024 * 1024), 0);
  CHECK_EQ(h.loop->set_reading(p.client, false), 0);
  std::string bytes = pattern(4 * 1024 * 1024, 6);
  int64_t queued = h.write(p.server, bytes);
  CHECK(queued >= 64 * 1024);
  h.pump_for(50);
  CHECK_EQ(h.count(kDrain, p.server), 0u);
  CHECK_EQ(h.loop->set_reading(p.client, true), 0);
  CHECK(h.pump_until([&] { return h.count(kDrain, p.server) == 1; }));
  CHECK(h.pump_until([&] { return h.received_size(p.client) == bytes.size(); }));
  CHECK(h.received(p.client) == bytes);
  CHECK_EQ(h.count(kDrain, p.server), 1u);
}

TEST(loop_write_beyond_max_write_aborts_the_connection) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  CHECK_EQ(h.loop->set_write_limits(p.server, 1024, 512, 256 * 1024), 0);
  CHECK_EQ(h.loop->set_reading(p.client, false), 0);
  std::string chunk = pattern(64 * 1024, 7);
  int64_t result = 0;
  for (int i = 0; i < 200 && result >= 0; i++) {
    result = h.write(p.server, chunk);
    if (result >= 0) CHECK(result <= 256 * 1024);
  }
  CHECK_EQ(result, -ENOBUFS);
  CHECK_EQ(h.loop->queued_bytes(p.server), -EBADF);  // gone
  CHECK_EQ(h.loop->set_reading(p.client, true), 0);
  CHECK(h.pump_until([&] { return h.has(kClosed, p.client); }));
}

// Connections share their listener's limits record: changing one
// connection's limits gives it its own and leaves the others' as they were.
TEST(loop_write_limits_changed_on_one_connection_leave_its_siblings_theirs) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  ConnDefaults defaults;
  defaults.limits.max_write = 64 * 1024;
  Configured server = configured_listener(h, AdmissionPolicy{}, defaults);
  REQUIRE(server.port > 0);
  int first = raw_connect(server.port), second = raw_connect(server.port);
  REQUIRE(first >= 0 && second >= 0);  // neither reads: the kernel's buffers fill
  CHECK(h.pump_until([&] { return accepted_ids(h).size() == 2; }));
  std::vector<uint64_t> ids = accepted_ids(h);
  REQUIRE(ids.size() == 2u);
  CHECK_EQ(h.loop->set_write_limits(ids[1], 64 * 1024, 16 * 1024, 64 * 1024 * 1024), 0);
  std::string chunk = pattern(64 * 1024, 8);
  int64_t result = 0;
  int written = 0;
  for (; written < 400 && result >= 0; written++) result = h.write(ids[0], chunk);
  CHECK_EQ(result, -ENOBUFS);  // the listener's 64 KiB held for the first
  for (int i = 0; i < written + 4; i++) CHECK(h.write(ids[1], chunk) >= 0);
  close_socket(first);
  close_socket(second);
}

TEST(loop_cap_in_backlog_mode_accepts_nothing_over_the_cap) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  AdmissionPolicy policy;
  policy.max_connections = 1;
  policy.wait_in_backlog = true;
  Configured server = configured_listener(h, policy);
  REQUIRE(server.port > 0);
  int first = raw_connect(server.port), second = raw_connect(server.port);
  REQUIRE(first >= 0 && second >= 0);
  CHECK(h.pump_until([&] { return accepted_ids(h).size() == 1; }));
  h.pump_for(50);
  CHECK_EQ(h.loop->stats().accepted, 1u);  // the second waits in the kernel's backlog
  CHECK_EQ(h.loop->queued_connections(), 0u);
  CHECK_EQ(h.loop->close(accepted_ids(h)[0]), 1);
  CHECK(h.pump_until([&] { return accepted_ids(h).size() == 2; }));
  ::send(native_socket(second), "ok", 2, 0);
  uint64_t next = accepted_ids(h)[1];
  CHECK(h.pump_until([&] { return h.received(next) == "ok"; }));
  close_socket(first);
  close_socket(second);
}

#ifdef _WIN32
// Windows' select ceiling is a count of sockets, not an fd value (POSIX's is
// tested past FD_SETSIZE in test/): with the fd_set's places taken, an
// accepted client is refused by the listener's policy and a connect fails
// with EMFILE.
TEST(loop_select_full_set_refuses_cleanly) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  REQUIRE(std::string(h.loop->backend()) == "select");
  Configured server = configured_listener(h, AdmissionPolicy{});
  REQUIRE(server.port > 0);
  // Made-up socket values take every place left but one (claim only counts).
  constexpr int kFake = 0x40000000;
  int fakes = 0;
  while (h.poller->claim(kFake + 4 * fakes)) fakes++;
  CHECK_EQ(fakes, 1023 - 1);  // the listener has one place
  h.poller->remove(kFake);    // one place frees: the first client takes it
  int served = raw_connect(server.port);
  REQUIRE(served >= 0);
  CHECK(h.pump_until([&] { return accepted_ids(h).size() == 1; }));
  int refused = raw_connect(server.port);
  REQUIRE(refused >= 0);
  CHECK(h.pump_until([&] { return h.loop->stats().rejected == 1; }));
  CHECK(h.pump_until([&] { return peer_state(refused) != 0; }));  // closed on it
  CHECK_EQ(peer_state(served), 0);
  CHECK_EQ(accepted_ids(h).size(), 1u);
  CHECK_EQ(h.loop->connect_tcp("127.0.0.1", server.port), -EMFILE);
  CHECK_EQ(h.loop->live_handles(), 2u);
  h.pump_for(100);
  CHECK_EQ(h.loop->stats().accepted, 2u);  // that connect never dialled
  close_socket(served);
  close_socket(refused);
}
#endif

// ============================================================================
// Receiving and accepting (io_uring takes these as completions: multishot
// recv from a provided-buffer ring, multishot accept; the others read and
// accept on readiness). Behaviour tests: they pass on every backend.
// ============================================================================

namespace {

// Sets an environment variable for the life of a scope (backend tuning read
// when a poller is made; the other backends ignore it).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    set(name, value);
  }
  ~ScopedEnv() { set(name_, had_ ? old_.c_str() : nullptr); }

 private:
  static void set(const char* name, const char* value) {
#ifdef _WIN32
    _putenv_s(name, value ? value : "");  // "" removes it there
#else
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
#endif
  }

  const char* name_;
  bool had_ = false;
  std::string old_;
};

}  // namespace

TEST(loop_receive_keeps_bytes_intact_when_the_buffer_ring_runs_dry) {
  // Eight 4 KiB buffers for three connections sending 1 MiB each at once:
  // io_uring's multishot recvs end with -ENOBUFS over and over and must be
  // armed again, with every byte delivered once and in order.
  ScopedEnv buffers("NATIVE_REACTOR_IO_URING_BUFFERS", "8x4096");
  Harness h;
  REQUIRE(h.loop != nullptr);
  std::vector<Pair> pairs;
  pairs.push_back(tcp_pair(h));
  REQUIRE(pairs[0].ok);
  for (int i = 0; i < 2; i++) pairs.push_back(tcp_pair(h, static_cast<int64_t>(pairs[0].listener)));
  std::vector<std::string> sent;
  for (size_t i = 0; i < pairs.size(); i++) {
    REQUIRE(pairs[i].ok);
    sent.push_back(pattern(1 << 20, 40 + static_cast<uint32_t>(i)));
    CHECK(h.write(pairs[i].client, sent[i]) >= 0);
  }
  CHECK(h.pump_until([&] {
    for (size_t i = 0; i < pairs.size(); i++) {
      if (h.received_size(pairs[i].server) < sent[i].size()) return false;
    }
    return true;
  }));
  for (size_t i = 0; i < pairs.size(); i++) {
    CHECK(h.received(pairs[i].server) == sent[i]);
    CHECK(h.sink.from_slabs(pairs[i].server) == sent[i]);
  }
  CHECK(h.sink.pieces_disjoint());
  CHECK_EQ(h.sink.bad_data_records, 0);
  CHECK_EQ(h.loop->stats().bytes_in, 3u << 20);
  // The peer's end still arrives after the last byte.
  CHECK_EQ(h.loop->end(pairs[0].client), 0);
  CHECK(h.pump_until([&] { return h.has(kEof, pairs[0].server); }));
  CHECK((h.kinds(pairs[0].server) == std::vector<int32_t>{kAccepted, kData, kEof}));
}

TEST(loop_receive_keeps_small_messages_of_many_connections_apart_when_the_ring_runs_dry) {
  // 400 connections send 64 B each at once, three rounds, into two 4 KiB
  // buffers: io_uring packs many messages into one buffer (incremental
  // buffers) and runs dry every round; each connection gets its own bytes,
  // in order, none of another's. Below select's 1,024 fds.
  ScopedEnv buffers("NATIVE_REACTOR_IO_URING_BUFFERS", "2x4096");
  Harness h;
  REQUIRE(h.loop != nullptr);
  std::vector<Pair> pairs;
  pairs.push_back(tcp_pair(h));
  REQUIRE(pairs[0].ok);
  for (int i = 1; i < 400; i++) {
    pairs.push_back(tcp_pair(h, static_cast<int64_t>(pairs[0].listener)));
    REQUIRE(pairs.back().ok);
  }
  std::vector<std::string> sent(pairs.size());
  for (uint32_t round = 0; round < 3; round++) {
    for (size_t i = 0; i < pairs.size(); i++) {
      std::string message = pattern(64, static_cast<uint32_t>(i * 3 + round));
      CHECK_EQ(h.write(pairs[i].client, message), 0);
      sent[i] += message;
    }
    CHECK(h.pump_until([&] {
      for (size_t i = 0; i < pairs.size(); i++) {
        if (h.received_size(pairs[i].server) < sent[i].size()) return false;
      }
      return true;
    }));
  }
  for (size_t i = 0; i < pairs.size(); i++) CHECK(h.received(pairs[i].server) == sent[i]);
  CHECK(h.sink.pieces_disjoint());
  CHECK_EQ(h.sink.bad_data_records, 0);
  CHECK_EQ(h.loop->stats().bytes_in, pairs.size() * 3 * 64);
}

TEST(loop_receive_splits_into_small_slabs_and_reads) {
  // Buffers larger than a read and than a slab: the bytes of one receive
  // are split into records no longer than max_read, over several slabs.
  ScopedEnv buffers("NATIVE_REACTOR_IO_URING_BUFFERS", "4x16384");
  LoopLimits limits;
  limits.max_read = 1000;
  Harness h(4, limits, 4096);
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  std::string bytes = pattern(300000, 50);
  CHECK(h.write(p.client, bytes) >= 0);
  CHECK(h.pump_until([&] { return h.received_size(p.server) >= bytes.size(); }));
  CHECK(h.received(p.server) == bytes);
  CHECK(h.sink.from_slabs(p.server) == bytes);
  CHECK(h.sink.pieces_disjoint());
  for (const TestSink::Piece& piece : h.sink.all_pieces) CHECK(piece.length <= 1000);
  CHECK_EQ(h.sink.bad_data_records, 0);
}

TEST(loop_pause_inside_a_delivery_holds_what_arrives_until_resume) {
  // The protocol pauses on the first bytes, from inside the delivery (as
  // JavaScript does), while more are in flight: nothing is delivered while
  // paused, nothing is lost, and the end comes after the last byte.
  Harness h(2);  // a tiny record buffer: deliveries happen mid-batch
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  bool paused = false, pause_done = false;
  size_t delivered_while_paused = 0;
  size_t eof_while_paused = 0;
  h.sink.hook = [&](const Record& r) {
    if (packed_of(r) != p.server) return;
    if (paused && r.kind == kData) delivered_while_paused++;
    if (paused && r.kind == kEof) eof_while_paused++;
    if (r.kind == kData && !pause_done) {
      pause_done = true;
      paused = true;
      CHECK_EQ(h.loop->set_reading(p.server, false), 0);
    }
  };
  std::string bytes = pattern(2 << 20, 51);
  CHECK(h.write(p.client, bytes) >= 0);
  CHECK_EQ(h.loop->end(p.client), 0);  // the end arrives while paused
  CHECK(h.pump_until([&] { return paused; }));
  h.pump_for(200);
  size_t while_paused = h.received_size(p.server);
  CHECK(while_paused < bytes.size());
  CHECK_EQ(delivered_while_paused, 0u);
  CHECK(!h.has(kEof, p.server));
  paused = false;
  h.sink.hook = nullptr;
  CHECK_EQ(h.loop->set_reading(p.server, true), 0);
  CHECK(h.pump_until([&] { return h.has(kEof, p.server); }));
  CHECK_EQ(eof_while_paused, 0u);
  CHECK(h.received(p.server) == bytes);
  CHECK(h.sink.from_slabs(p.server) == bytes);
  CHECK((h.kinds(p.server) == std::vector<int32_t>{kAccepted, kData, kEof}));
  CHECK_EQ(h.loop->stats().bytes_in, bytes.size());
}

TEST(loop_pause_and_resume_repeatedly_keeps_order) {
  // Pause and resume from inside deliveries, again and again, while a large
  // stream arrives.
  Harness h(3);
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  std::string bytes = pattern(4 << 20, 52);
  CHECK(h.write(p.client, bytes) >= 0);
  int records = 0;
  bool paused = false;
  bool bad = false;
  h.sink.hook = [&](const Record& r) {
    if (packed_of(r) != p.server || r.kind != kData) return;
    if (paused) bad = true;
    if (++records % 3 == 0) {
      paused = true;
      h.loop->set_reading(p.server, false);
    }
  };
  CHECK(h.pump_until(
      [&] {
        if (paused) {
          paused = false;
          h.loop->set_reading(p.server, true);
        }
        return h.received_size(p.server) >= bytes.size();
      },
      20000));
  CHECK(!bad);
  CHECK(h.received(p.server) == bytes);
  CHECK(h.sink.from_slabs(p.server) == bytes);
}

TEST(loop_receive_end_and_reset) {
  // An end of stream while reading is kEof (the connection may still send);
  // a reset closes with ECONNRESET.
  Harness h;
  REQUIRE(h.loop != nullptr);
  Pair p = tcp_pair(h);
  REQUIRE(p.ok);
  CHECK(h.write(p.client, "request") >= 0);
  CHECK_EQ(h.loop->end(p.client), 0);
  CHECK(h.pump_until([&] { return h.has(kEof, p.server); }));
  CHECK_EQ(h.received(p.server), std::string("request"));
  CHECK(h.write(p.server, "reply") >= 0);  // half-closed: still writable
  CHECK_EQ(h.loop->end(p.server), 1);      // both directions done: closed now
  CHECK(h.pump_until([&] { return h.has(kClosed, p.client); }));
  CHECK_EQ(h.received(p.client), std::string("reply"));
  CHECK_EQ(h.find(kClosed, p.client)->a, 0);

  Pair q = tcp_pair(h, static_cast<int64_t>(p.listener));
  REQUIRE(q.ok);
  CHECK(h.write(q.client, "x") >= 0);
  CHECK(h.pump_until([&] { return h.received(q.server) == "x"; }));
  CHECK_EQ(h.loop->abort(q.client), 1);
  REQUIRE(h.pump_until([&] { return h.has(kClosed, q.server); }));
  CHECK_EQ(h.find(kClosed, q.server)->a, ECONNRESET);
}

TEST(loop_accepts_many_clients_arriving_at_once) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  int port = h.local_port(static_cast<uint64_t>(listener));
  h.loop->prepare_wait();
  constexpr int kClients = 300;
  std::vector<int> raw;
  for (int i = 0; i < kClients; i++) {
    int fd = raw_connect(port);
    REQUIRE(fd >= 0);
    raw.push_back(fd);
    std::string tag = "client-" + std::to_string(i);
    int length = static_cast<int>(tag.size());
    REQUIRE(::send(native_socket(fd), tag.data(), length, 0) == length);
  }
  CHECK(h.pump_until([&] { return accepted_ids(h).size() == kClients; }));
  std::vector<uint64_t> ids = accepted_ids(h);
  CHECK(h.pump_until([&] {
    for (uint64_t id : ids) {
      if (h.received_size(id) == 0) return false;
    }
    return true;
  }));
  std::vector<std::string> tags;
  for (uint64_t id : ids) tags.push_back(h.received(id));
  std::sort(tags.begin(), tags.end());
  std::vector<std::string> expected;
  for (int i = 0; i < kClients; i++) expected.push_back("client-" + std::to_string(i));
  std::sort(expected.begin(), expected.end());
  CHECK(tags == expected);
  CHECK_EQ(h.loop->stats().accepted, static_cast<uint64_t>(kClients));
  CHECK_EQ(h.loop->open_connections(), static_cast<size_t>(kClients));
  for (int fd : raw) close_socket(fd);
  CHECK(h.pump_until([&] { return h.count_kind(kEof) == static_cast<size_t>(kClients); }));
}

#ifndef _WIN32  // a descriptor limit to run into, as above
TEST(loop_accept_exhaustion_with_clients_arriving_does_not_spin) {
  // Descriptors run out while clients keep arriving: a few attempts per
  // backoff, the clients wait, and are all served once descriptors free up.
  Harness h;
  REQUIRE(h.loop != nullptr);
  constexpr int kClients = 20;
  std::vector<int> raw;
  for (int i = 0; i < kClients; i++) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    raw.push_back(fd);
  }
  TightFdLimit limit(raw[0], 8);
  REQUIRE(limit.ok());
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  int port = h.local_port(static_cast<uint64_t>(listener));
  h.loop->prepare_wait();
  // Room for three connections, then none.
  std::vector<int> filler;
  for (int fd; (fd = ::dup(raw[0])) >= 0;) filler.push_back(fd);
  REQUIRE(filler.size() >= 3);
  for (int i = 0; i < 3; i++) {
    ::close(filler.back());
    filler.pop_back();
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  uint64_t wakes_before = h.loop->stats().loop_iterations;
  for (int i = 0; i < kClients; i++) {
    REQUIRE(::connect(raw[i], reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    if (i % 5 == 4) h.pump_for(40);
  }
  h.pump_for(200);
  CHECK_EQ(h.count_kind(kAccepted), 3u);
  CHECK(h.loop->stats().emfile >= 1);
  CHECK(h.loop->stats().emfile <= 8);
  CHECK(h.loop->stats().loop_iterations - wakes_before < 400);
  for (int fd : filler) ::close(fd);
  limit.restore();
  CHECK(
      h.pump_until([&] { return h.count_kind(kAccepted) == static_cast<size_t>(kClients); }, 5000));
  CHECK_EQ(h.loop->stats().accepted, static_cast<uint64_t>(kClients));
  for (int fd : raw) ::close(fd);
}
#endif

// ============================================================================
// Bytes followed at once by a reset: whatever arrives in one batch, the bytes
// reach the protocol on a live connection (it may still write; the write
// fails later, not with EBADF), then the loss is reported as ECONNRESET.

namespace {

struct ResetAfterBytes {
  int64_t write_result = 0;
  bool wrote = false;
};

// A raw client sends `bytes` and resets at once, while the loop is not
// looking, so a completion backend collects both in one batch.
void send_then_reset(int fd, const std::string& bytes) {
  testing::send_now(fd, bytes.data(), bytes.size());
  set_reset_on_close(fd);
  close_socket(fd);
  // Both completions (or readiness) land before the loop next looks.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
}

// Connects a raw client to `port` and pumps until the loop reports it
// accepted; returns the server side's id (0 if none came), the client in *fd.
uint64_t accept_raw_client(Harness& h, int port, int* fd) {
  size_t mark = h.sink.records.size();
  *fd = raw_connect(port);
  if (*fd < 0) return 0;
  uint64_t server = 0;
  h.pump_until([&] {
    for (size_t i = mark; i < h.sink.records.size(); i++) {
      if (h.sink.records[i].kind == kAccepted) server = packed_of(h.sink.records[i]);
    }
    return server != 0;
  });
  return server;
}

}  // namespace

TEST(loop_bytes_then_reset_in_one_batch_are_delivered_before_econnreset) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  int port = h.local_port(static_cast<uint64_t>(listener));
  for (int round = 0; round < 20; round++) {
    int fd = -1;
    uint64_t server = accept_raw_client(h, port, &fd);
    REQUIRE(server != 0);
    h.loop->prepare_wait();  // the receive is armed
    ResetAfterBytes seen;
    h.sink.hook = [&](const Record& r) {
      if (r.kind != kData || packed_of(r) != server || seen.wrote) return;
      seen.wrote = true;
      seen.write_result = h.write(server, "echo");  // as an echo protocol does
    };
    send_then_reset(fd, "0123456789abcdef");
    REQUIRE(h.pump_until([&] { return h.has(kClosed, server); }));
    h.sink.hook = nullptr;
    CHECK_EQ(h.received(server), std::string("0123456789abcdef"));
    CHECK(seen.wrote);
    CHECK(seen.write_result >= 0);  // not -EBADF: the connection was still there
    CHECK_EQ(h.find(kClosed, server)->a, ECONNRESET);
    CHECK((h.kinds(server) == std::vector<int32_t>{kAccepted, kData, kClosed}));
  }
}

TEST(loop_bytes_then_reset_with_writes_queued_are_delivered_before_the_loss) {
  // The same with the server's writes queued (write interest on: io_uring
  // has a poll beside the receive, which reports the reset as an error).
  Harness h;
  REQUIRE(h.loop != nullptr);
  int64_t listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  REQUIRE(listener >= 0);
  int port = h.local_port(static_cast<uint64_t>(listener));
  std::string big = pattern(4 << 20, 60);
  int rounds_with_bytes = 0;
  for (int round = 0; round < 20; round++) {
    int fd = -1;
    uint64_t server = accept_raw_client(h, port, &fd);
    REQUIRE(server != 0);
    REQUIRE(h.write(server, big) > 0);  // the client never reads: most of it waits
    h.loop->prepare_wait();
    ResetAfterBytes seen;
    h.sink.hook = [&](const Record& r) {
      if (r.kind != kData || packed_of(r) != server || seen.wrote) return;
      seen.wrote = true;
      seen.write_result = h.write(server, "echo");
    };
    send_then_reset(fd, "0123456789abcdef");
    REQUIRE(h.pump_until([&] { return h.has(kClosed, server); }));
    h.sink.hook = nullptr;
    // A reset may take the unread bytes with it; what arrived came first.
    if (seen.wrote) {
      rounds_with_bytes++;
      CHECK(seen.write_result >= 0);
      CHECK_EQ(h.received(server), std::string("0123456789abcdef"));
    }
    int error = h.find(kClosed, server)->a;
    CHECK(error == ECONNRESET || error == EPIPE);
  }
  // Readiness backends flush first and meet the reset before reading; a
  // completion backend has the bytes already.
  if (h.poller->receives()) CHECK(rounds_with_bytes > 0);
}

#ifndef _WIN32  // a descriptor limit to run into, as above
TEST(loop_backend_out_of_descriptors_reports_emfile) {
  // Every descriptor taken: making the backend fails with the errno name, so
  // JavaScript can tell a full table (retry later) from a missing backend.
  // Named before the table fills: listing the backends needs descriptors too.
  const std::string backend = backend_under_test();
  int probe = ::dup(0);
  REQUIRE(probe >= 0);
  TightFdLimit limit(probe, 4);
  REQUIRE(limit.ok());
  std::vector<int> filler;
  for (int fd; (fd = ::dup(probe)) >= 0;) filler.push_back(fd);
  std::string error;
  int fallback = 0;
  std::unique_ptr<Poller> poller = make_poller(backend, &error, &fallback);
  CHECK(poller == nullptr);
  CHECK_EQ(error, std::string("EMFILE"));
  CHECK_EQ(fallback, 0);  // io_uring: no fallback for want of a descriptor
  for (int fd : filler) ::close(fd);
  ::close(probe);
  limit.restore();
  error.clear();
  CHECK(make_poller(backend, &error) != nullptr);
}
#endif

// ---- adopted descriptors ---------------------------------------------------

#ifdef _WIN32
TEST(loop_adopt_is_posix_only) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  CHECK_EQ(h.loop->adopt_listener(3), -ENOTSUP);
  CHECK_EQ(h.loop->adopt_connection(3), -ENOTSUP);
}
#else
namespace {

// A plain blocking TCP socket listening on loopback, made outside the loop.
int outside_listener(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

// Echoes what the loop received on `id` back to the peer `fd` and checks it.
void echo_through(Harness& h, uint64_t id, int fd, const std::string& bytes) {
  size_t before = h.received_size(id);
  REQUIRE(::send(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
  CHECK(h.pump_until([&] { return h.received_size(id) >= before + bytes.size(); }));
  CHECK(h.received(id).substr(before) == bytes);
  CHECK(h.write(id, bytes) >= 0);
  std::string back;
  uint64_t deadline = Loop::now_ms() + 5000;
  while (back.size() < bytes.size() && Loop::now_ms() < deadline) {
    h.step(1);
    char buffer[65536];
    ssize_t n = recv_now(fd, buffer, sizeof buffer);
    if (n > 0) back.append(buffer, static_cast<size_t>(n));
  }
  CHECK(back == bytes);
}

}  // namespace

TEST(loop_adopt_listener_serves_and_closes_the_fd) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  int port = 0;
  int fd = outside_listener(&port);
  REQUIRE(fd >= 0);
  // The wrong call leaves the fd alone.
  CHECK_EQ(h.loop->adopt_connection(fd), -EINVAL);
  CHECK(is_open(fd));
  CHECK_EQ(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  int64_t listener = h.loop->adopt_listener(fd);
  REQUIRE(listener >= 0);
  CHECK(::fcntl(fd, F_GETFL) & O_NONBLOCK);
  CHECK(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  CHECK_EQ(h.loop->adopt_listener(fd), -EEXIST);  // one entry per fd
  CHECK_EQ(h.local_port(listener), port);
  // Every listener feature: a cap of one parks the second client.
  AdmissionPolicy policy;
  policy.max_connections = 1;
  REQUIRE(h.loop->configure_listener(listener, policy, ConnDefaults{}) == 0);
  int first = raw_connect(port);
  REQUIRE(first >= 0);
  CHECK(h.pump_until([&] { return accepted_ids(h).size() == 1; }));
  int second = raw_connect(port);
  REQUIRE(second >= 0);
  CHECK(h.pump_until([&] { return h.loop->queued_connections() == 1; }));
  uint64_t served = accepted_ids(h)[0];
  echo_through(h, served, first, "ping");
  CHECK_EQ(h.loop->close(served), 1);
  h.loop->prepare_wait();
  CHECK(h.pump_until([&] { return accepted_ids(h).size() == 2; }));
  echo_through(h, accepted_ids(h)[1], second, pattern(100000, 3));
  CHECK_EQ(h.loop->close(listener), 1);
  CHECK(!is_open(fd));  // the loop owned it
  ::close(first);
  ::close(second);
}

TEST(loop_adopt_connection_echoes_tcp_and_unix) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  // TCP: the accepted end of a loopback pair made outside.
  int port = 0;
  int lfd = outside_listener(&port);
  REQUIRE(lfd >= 0);
  int peer = raw_connect(port);
  REQUIRE(peer >= 0);
  int accepted = ::accept(lfd, nullptr, nullptr);
  REQUIRE(accepted >= 0);
  CHECK_EQ(h.loop->adopt_listener(accepted), -EINVAL);  // not listening
  CHECK(is_open(accepted));
  int64_t tcp = h.loop->adopt_connection(accepted);
  REQUIRE(tcp >= 0);
  int nodelay = 0;
  socklen_t length = sizeof nodelay;
  CHECK(::getsockopt(accepted, IPPROTO_TCP, TCP_NODELAY, &nodelay, &length) == 0 && nodelay);
  CHECK_EQ(h.loop->open_connections(), 1u);
  echo_through(h, tcp, peer, "hello over tcp");
  echo_through(h, tcp, peer, pattern(300000, 9));
  // The peer ends: kEof; closing ours closes the fd.
  ::shutdown(peer, SHUT_WR);
  CHECK(h.pump_until([&] { return h.has(kEof, tcp); }));
  CHECK_EQ(h.loop->close(tcp), 1);
  CHECK(!is_open(accepted));
  ::close(peer);
  ::close(lfd);

  // Unix: one end of a socketpair.
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  int64_t unix_id = h.loop->adopt_connection(pair[0]);
  REQUIRE(unix_id >= 0);
  echo_through(h, unix_id, pair[1], "hello over a socketpair");
  ::close(pair[1]);
  CHECK(h.pump_until([&] { return h.has(kEof, unix_id) || h.has(kClosed, unix_id); }));
  h.loop->close(unix_id);
  CHECK(!is_open(pair[0]));
}

TEST(loop_adopt_refuses_what_it_cannot_take_and_leaves_it_open) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  CHECK_EQ(h.loop->adopt_listener(-1), -EBADF);
  int closed = ::dup(0);
  REQUIRE(closed >= 0);
  ::close(closed);
  CHECK_EQ(h.loop->adopt_listener(closed), -EBADF);
  CHECK_EQ(h.loop->adopt_connection(closed), -EBADF);
  int file = ::open("/dev/null", O_RDONLY);
  REQUIRE(file >= 0);
  CHECK_EQ(h.loop->adopt_listener(file), -ENOTSOCK);
  CHECK_EQ(h.loop->adopt_connection(file), -ENOTSOCK);
  CHECK(is_open(file));
  ::close(file);
  int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
  REQUIRE(udp >= 0);
  CHECK_EQ(h.loop->adopt_connection(udp), -EINVAL);
  CHECK(is_open(udp));
  ::close(udp);
  int fresh = ::socket(AF_INET, SOCK_STREAM, 0);  // neither listening nor connected
  REQUIRE(fresh >= 0);
  CHECK_EQ(h.loop->adopt_listener(fresh), -EINVAL);
  CHECK_EQ(h.loop->adopt_connection(fresh), -ENOTCONN);
  CHECK(is_open(fresh));
  ::close(fresh);
  CHECK_EQ(h.loop->live_handles(), 0u);

  // A Unix listener: require_tcp refuses it; adopted, its path outlives it.
  std::string path = temp_socket_path("adopt");
  ::unlink(path.c_str());
  int ufd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(ufd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(::bind(ufd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(ufd, 8) == 0);
  CHECK_EQ(h.loop->adopt_listener(ufd, true), -EPROTOTYPE);
  CHECK(is_open(ufd));
  int64_t listener = h.loop->adopt_listener(ufd);
  REQUIRE(listener >= 0);
  size_t mark = h.sink.records.size();
  int64_t client = h.loop->connect_unix(path);
  REQUIRE(client >= 0);
  Pair p;
  p.listener = static_cast<uint64_t>(listener);
  p.client = static_cast<uint64_t>(client);
  REQUIRE(finish_pair(h, &p, mark));
  CHECK_EQ(h.loop->close(p.listener), 1);
  CHECK(path_exists(path));  // not ours to remove
  ::unlink(path.c_str());
}
#endif
