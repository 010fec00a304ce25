// Loop::write_batch: the corked writes of one JavaScript batch, each with
// the result write() would give, the bytes intact and in order per
// connection. On io_uring they go to the kernel as one submission; the tests
// run on every backend (test/native-test.mjs), loopback only, every wait
// bounded.
#ifndef _WIN32
#include <fcntl.h>
#include <sys/socket.h>
#endif
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../loop.h"
#include "../platform.h"
#include "../poller.h"
#include "../sockets.h"
#include "loop_harness.h"
#include "test_framework.h"
#include "test_sockets.h"

using namespace reactor;
using testing::Harness;
using testing::packed_of;
using testing::raw_connect;
using testing::recv_now;

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

// Raw clients outside the loop and the connections the loop accepted for
// them, matched by address.
struct Peers {
  int64_t listener = -1;
  std::vector<int> fds;
  std::vector<uint64_t> ids;
  bool ok = false;
  ~Peers() {
    for (int fd : fds) close_socket(fd);
  }
};

int local_port_of(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof address;
  if (getsockname(native_socket(fd), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return -1;
  }
  return ntohs(address.sin_port);
}

void connect_peers(Harness& h, int count, Peers* peers) {
  peers->listener = h.loop->listen_tcp("127.0.0.1", 0, ListenOptions{});
  if (peers->listener < 0) return;
  int port = h.local_port(static_cast<uint64_t>(peers->listener));
  size_t mark = h.sink.records.size();
  for (int i = 0; i < count; i++) {
    int fd = raw_connect(port);
    if (fd < 0) return;
    peers->fds.push_back(fd);
  }
  std::vector<uint64_t> accepted;
  h.pump_until([&] {
    accepted.clear();
    for (size_t i = mark; i < h.sink.records.size(); i++) {
      if (h.sink.records[i].kind == kAccepted) accepted.push_back(packed_of(h.sink.records[i]));
    }
    return accepted.size() == static_cast<size_t>(count);
  });
  if (accepted.size() != static_cast<size_t>(count)) return;
  std::map<int, uint64_t> by_port;
  for (uint64_t id : accepted) {
    SocketAddress address;
    if (h.loop->address(id, true, &address) != 0) return;
    by_port[address.port] = id;
  }
  for (int fd : peers->fds) {
    auto it = by_port.find(local_port_of(fd));
    if (it == by_port.end()) return;
    peers->ids.push_back(it->second);
  }
  peers->ok = true;
}

// Reads what each peer has until every one holds its expected bytes (or
// more), pumping the loop so queued bytes go out.
bool read_until(Harness& h, const Peers& peers, std::vector<std::string>* got,
                const std::vector<std::string>& expected) {
  std::vector<char> buffer(256 * 1024);
  return h.pump_until([&] {
    bool done = true;
    for (size_t i = 0; i < peers.fds.size(); i++) {
      for (;;) {
        ssize_t n = recv_now(peers.fds[i], buffer.data(), buffer.size());
        if (n <= 0) break;
        (*got)[i].append(buffer.data(), static_cast<size_t>(n));
      }
      done = done && (*got)[i].size() >= expected[i].size();
    }
    return done;
  });
}

void shrink_receive_buffer(int fd) {
  int size = 16 * 1024;
  setsockopt(native_socket(fd), SOL_SOCKET, SO_RCVBUF, reinterpret_cast<const char*>(&size),
             sizeof size);
}

}  // namespace

TEST(write_batch_many_connections_several_writes_each_keep_bytes_and_order) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Peers peers;
  connect_peers(h, 16, &peers);
  REQUIRE(peers.ok);
  // Four writes per connection, interleaved across connections, of sizes
  // from 1 byte to ~100 KiB.
  std::vector<std::string> pieces;
  std::vector<CorkedWrite> writes;
  std::vector<std::string> expected(peers.ids.size());
  pieces.reserve(64);
  for (uint32_t round = 0; round < 4; round++) {
    for (size_t k = 0; k < peers.ids.size(); k++) {
      size_t size = (k * 7919 + round * 31337) % 100000 + 1;
      pieces.push_back(pattern(size, static_cast<uint32_t>(k * 4 + round)));
      expected[k] += pieces.back();
    }
  }
  for (size_t at = 0; at < pieces.size(); at++) {
    size_t k = at % peers.ids.size();
    writes.push_back(CorkedWrite{peers.ids[k], {pieces[at].data(), pieces[at].size()}});
  }
  std::vector<int64_t> results(writes.size(), -1);
  h.loop->write_batch(writes.data(), static_cast<int>(writes.size()), results.data());
  for (size_t at = 0; at < writes.size(); at++) CHECK(results[at] >= 0);
  // The last write of each connection says what it left queued.
  for (size_t k = 0; k < peers.ids.size(); k++) {
    size_t last = pieces.size() - peers.ids.size() + k;
    CHECK_EQ(results[last], h.loop->queued_bytes(peers.ids[k]));
  }
  std::vector<std::string> got(peers.ids.size());
  CHECK(read_until(h, peers, &got, expected));
  for (size_t k = 0; k < peers.ids.size(); k++) CHECK(got[k] == expected[k]);
  CHECK_EQ(h.count_kind(kClosed), 0u);
}

TEST(write_batch_to_a_peer_that_does_not_read_queues_the_rest_in_order) {
  // More than the peer's receive buffer and our send buffer hold: the
  // first send is short, the kernel has no room for the rest (EAGAIN; on
  // io_uring a send that would block completes at once instead of waiting,
  // or this call would not return), and everything after it is queued,
  // behind it, in order.
  Harness h;
  REQUIRE(h.loop != nullptr);
  Peers peers;
  connect_peers(h, 1, &peers);
  REQUIRE(peers.ok);
  shrink_receive_buffer(peers.fds[0]);
  uint64_t id = peers.ids[0];
  std::vector<std::string> pieces;
  std::vector<CorkedWrite> writes;
  std::vector<std::string> expected(1);
  for (uint32_t i = 0; i < 16; i++) pieces.push_back(pattern(512 * 1024 + i, 100 + i));
  for (const std::string& piece : pieces) {
    writes.push_back(CorkedWrite{id, {const_cast<char*>(piece.data()), piece.size()}});
    expected[0] += piece;
  }
  std::vector<int64_t> results(writes.size(), -1);
  h.loop->write_batch(writes.data(), static_cast<int>(writes.size()), results.data());
  // Each result is the queue after that write, so they grow by whole writes
  // once something is queued.
  int64_t queued = h.loop->queued_bytes(id);
  CHECK(queued > 0);
  CHECK_EQ(results.back(), queued);
  for (size_t i = 1; i < results.size(); i++) {
    if (results[i - 1] > 0) {
      CHECK_EQ(results[i], results[i - 1] + static_cast<int64_t>(pieces[i].size()));
    }
  }
  // A second batch goes behind the queue.
  std::string tail = pattern(70000, 7);
  CorkedWrite more{id, {tail.data(), tail.size()}};
  int64_t result = -1;
  h.loop->write_batch(&more, 1, &result);
  CHECK_EQ(result, queued + static_cast<int64_t>(tail.size()));
  expected[0] += tail;
  std::vector<std::string> got(1);
  CHECK(read_until(h, peers, &got, expected));
  CHECK(got[0] == expected[0]);
  CHECK(h.pump_until([&] { return h.loop->queued_bytes(id) == 0; }));
  CHECK_EQ(h.count_kind(kClosed), 0u);
}

TEST(write_batch_refuses_as_write_does) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Peers peers;
  connect_peers(h, 3, &peers);
  REQUIRE(peers.ok);
  uint64_t open = peers.ids[0], ended = peers.ids[1], gone = peers.ids[2];
  CHECK_EQ(h.loop->end(ended), 0);
  CHECK_EQ(h.loop->close(gone), 1);
  char hello[] = "hello";
  std::vector<CorkedWrite> writes = {
      {open, {hello, 5}},
      {gone, {hello, 5}},                                   // closed: -EBADF
      {open, {hello, 0}},                                   // nothing: the queue's size
      {ended, {hello, 5}},                                  // ended: -EPIPE
      {static_cast<uint64_t>(peers.listener), {hello, 5}},  // not a connection
      {open, {hello + 1, 4}},
  };
  std::vector<int64_t> results(writes.size(), 99);
  h.loop->write_batch(writes.data(), static_cast<int>(writes.size()), results.data());
  CHECK_EQ(results[0], 0);
  CHECK_EQ(results[1], -EBADF);
  CHECK_EQ(results[2], 0);
  CHECK_EQ(results[3], -EPIPE);
  CHECK_EQ(results[4], -EBADF);
  CHECK_EQ(results[5], 0);
  std::vector<std::string> expected = {"helloello", "", ""};
  std::vector<std::string> got(3);
  CHECK(read_until(h, peers, &got, expected));
  CHECK_EQ(got[0], expected[0]);
}

TEST(write_batch_beyond_max_write_closes_that_connection_only) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Peers peers;
  connect_peers(h, 2, &peers);
  REQUIRE(peers.ok);
  shrink_receive_buffer(peers.fds[0]);
  uint64_t slow = peers.ids[0], other = peers.ids[1];
  CHECK_EQ(h.loop->set_write_limits(slow, 1024, 512, 256 * 1024), 0);
  std::string chunk = pattern(512 * 1024, 9);
  std::string small = pattern(1000, 10);
  std::vector<CorkedWrite> writes;
  std::vector<std::string> expected(2);
  for (int i = 0; i < 12; i++) {
    writes.push_back(CorkedWrite{slow, {chunk.data(), chunk.size()}});
    writes.push_back(CorkedWrite{other, {small.data(), small.size()}});
    expected[1] += small;
  }
  std::vector<int64_t> results(writes.size(), 99);
  h.loop->write_batch(writes.data(), static_cast<int>(writes.size()), results.data());
  // The slow one: what fits, then -ENOBUFS once, then it is gone.
  size_t at = 0;
  while (at < writes.size() && results[at] >= 0) {
    CHECK(results[at] <= 256 * 1024);
    at += 2;
  }
  REQUIRE(at < writes.size());
  CHECK_EQ(results[at], -ENOBUFS);
  for (at += 2; at < writes.size(); at += 2) CHECK_EQ(results[at], -EBADF);
  CHECK_EQ(h.loop->queued_bytes(slow), -EBADF);
  for (at = 1; at < writes.size(); at += 2) CHECK_EQ(results[at], 0);
  std::vector<std::string> got(2);
  std::vector<std::string> wanted = {"", expected[1]};
  CHECK(read_until(h, peers, &got, wanted));
  CHECK(got[1] == expected[1]);
}

TEST(write_batch_to_a_reset_peer_reports_the_error_as_write_does) {
  Harness h;
  REQUIRE(h.loop != nullptr);
  Peers peers;
  connect_peers(h, 2, &peers);
  REQUIRE(peers.ok);
  uint64_t reset = peers.ids[0], alive = peers.ids[1];
  set_reset_on_close(peers.fds[0]);
  close_socket(peers.fds[0]);
  peers.fds[0] = -1;
  char bytes[] = "are you there?";
  // Written until the loop reports the loss: kClosed with an errno, never a
  // signal or a hang; the other connection is untouched.
  std::string expected;
  bool closed = h.pump_until([&] {
    if (!h.has(kClosed, reset)) {
      CorkedWrite writes[] = {{reset, {bytes, sizeof bytes - 1}}, {alive, {bytes, 3}}};
      int64_t results[2];
      h.loop->write_batch(writes, 2, results);
      CHECK(results[0] >= 0 || results[0] == -EBADF);
      CHECK_EQ(results[1], 0);
      expected += "are";
    }
    return h.has(kClosed, reset);
  });
  CHECK(closed);
  const Record* record = h.find(kClosed, reset);
  REQUIRE(record != nullptr);
  CHECK_MSG(record->a == ECONNRESET || record->a == EPIPE, "errno " << record->a);
  CHECK(!h.has(kClosed, alive));
  peers.fds.erase(peers.fds.begin());
  peers.ids.erase(peers.ids.begin());
  std::vector<std::string> got(1);
  CHECK(read_until(h, peers, &got, {expected}));
  CHECK(got[0] == expected);
}

TEST(write_batch_keeps_what_arrives_meanwhile) {
  // Peers send while the loop is not looking; the batch's system call may
  // collect their bytes (io_uring runs the receives the kernel owes when it
  // is entered), and none may be lost or wait for a later wake-up.
  Harness h;
  REQUIRE(h.loop != nullptr);
  Peers peers;
  connect_peers(h, 8, &peers);
  REQUIRE(peers.ok);
  for (int round = 0; round < 20; round++) {
    h.loop->prepare_wait();  // receives armed
    std::vector<std::string> sent(peers.fds.size());
    for (size_t k = 0; k < peers.fds.size(); k++) {
      sent[k] = pattern(100 + k, static_cast<uint32_t>(round * 100 + k));
      testing::send_now(peers.fds[k], sent[k].data(), sent[k].size());
    }
    CHECK(testing::readable_within(h.loop->pollable_fd(), 1000));
    std::vector<std::string> replies(peers.fds.size());
    std::vector<CorkedWrite> writes;
    for (size_t k = 0; k < peers.fds.size(); k++) {
      replies[k] = pattern(50, static_cast<uint32_t>(round * 1000 + k));
      writes.push_back(CorkedWrite{peers.ids[k], {replies[k].data(), replies[k].size()}});
    }
    std::vector<int64_t> results(writes.size(), -1);
    std::map<uint64_t, size_t> before;
    for (uint64_t id : peers.ids) before[id] = h.received_size(id);
    h.loop->write_batch(writes.data(), static_cast<int>(writes.size()), results.data());
    for (int64_t r : results) CHECK_EQ(r, 0);
    CHECK(h.pump_until([&] {
      for (size_t k = 0; k < peers.ids.size(); k++) {
        if (h.received_size(peers.ids[k]) < before[peers.ids[k]] + sent[k].size()) return false;
      }
      return true;
    }));
    for (size_t k = 0; k < peers.ids.size(); k++) {
      CHECK(h.received(peers.ids[k]).substr(before[peers.ids[k]]) == sent[k]);
    }
    std::vector<std::string> got(peers.fds.size());
    CHECK(read_until(h, peers, &got, replies));
    for (size_t k = 0; k < peers.fds.size(); k++) CHECK(got[k] == replies[k]);
  }
}

#ifndef _WIN32
namespace {

struct SocketPair {
  int a = -1;
  int b = -1;
  SocketPair() {
    if (!testing::stream_pair(&a, &b)) a = b = -1;
  }
  ~SocketPair() {
    if (a >= 0) close_socket(a);
    if (b >= 0) close_socket(b);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
};

std::string drain(int fd) {
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = recv_now(fd, buffer, sizeof buffer)) > 0;) {
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

TEST(poller_send_batch_never_waits_for_room) {
  // A socket without O_NONBLOCK whose buffer is full: the send must fail at
  // once with EAGAIN (the bytes are the caller's only during the call), and
  // the other sends of the batch go out whole.
  std::string error;
  std::unique_ptr<Poller> poller = make_poller(testing::backend_under_test(), &error);
  REQUIRE(poller != nullptr);
  if (!poller->sends()) return;  // this backend leaves sending to the loop
  SocketPair full, open;
  REQUIRE(full.a >= 0 && open.a >= 0);
  REQUIRE(fcntl(full.a, F_SETFL, fcntl(full.a, F_GETFL) & ~O_NONBLOCK) == 0);
  std::string filler(4096, 'f');
  while (::send(full.a, filler.data(), filler.size(), MSG_DONTWAIT) > 0) {
  }
  std::string one = pattern(1000, 1), two = pattern(3000, 2);
  iovec full_chunk{one.data(), one.size()};
  iovec open_chunks[] = {{one.data(), one.size()}, {two.data(), two.size()}};
  BatchedSend sends[] = {{full.a, &full_chunk, 1, 0}, {open.a, open_chunks, 2, 0}};
  poller->send_batch(sends, 2);
  CHECK_EQ(sends[0].result, -EAGAIN);
  CHECK_EQ(sends[1].result, static_cast<int64_t>(one.size() + two.size()));
  CHECK(drain(open.b) == one + two);
}

TEST(poller_send_batch_larger_than_the_submission_queue) {
  // More sends than the ring's submission queue holds (1024): they go in
  // over several submissions, each with its own result.
  std::string error;
  std::unique_ptr<Poller> poller = make_poller(testing::backend_under_test(), &error);
  REQUIRE(poller != nullptr);
  if (!poller->sends()) return;
  constexpr int kSends = 1500;
  std::vector<std::unique_ptr<SocketPair>> pairs;
  std::vector<std::string> bytes;
  std::vector<iovec> chunks(kSends);
  std::vector<BatchedSend> sends;
  for (int i = 0; i < kSends; i++) {
    pairs.push_back(std::make_unique<SocketPair>());
    REQUIRE(pairs.back()->a >= 0);
    bytes.push_back(pattern(64 + static_cast<size_t>(i % 100), static_cast<uint32_t>(i)));
  }
  for (int i = 0; i < kSends; i++) {
    chunks[i] = {bytes[i].data(), bytes[i].size()};
    sends.push_back(BatchedSend{pairs[i]->a, &chunks[i], 1, 0});
  }
  poller->send_batch(sends.data(), kSends);
  for (int i = 0; i < kSends; i++) {
    CHECK_EQ(sends[i].result, static_cast<int64_t>(bytes[i].size()));
    CHECK(drain(pairs[i]->b) == bytes[i]);
  }
}
#endif
