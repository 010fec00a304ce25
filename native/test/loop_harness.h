// The loop under test with a sink that keeps everything: a real poller (the
// backend named by $NATIVE_REACTOR_BACKEND, default the platform's;
// test/native-test.mjs runs the tests once per backend), every wait bounded.
// TestSink keeps every record and every slab, so the bytes of each kData
// record can be checked both when delivered and later (slabs must never be
// overwritten).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../loop.h"
#include "../poller.h"
#include "test_sockets.h"

namespace testing {

inline uint64_t packed_of(const reactor::Record& r) {
  return reactor::Id{static_cast<uint32_t>(r.slot), static_cast<uint32_t>(r.gen)}.packed();
}

inline uint32_t slot_of(uint64_t packed) { return reactor::Id::unpack(packed).slot; }

// $NATIVE_REACTOR_BACKEND, else the platform's default.
inline std::string backend_under_test() {
  const char* name = std::getenv("NATIVE_REACTOR_BACKEND");
  return name && *name ? name : reactor::available_backends().front();
}

class TestSink final : public reactor::Sink {
 public:
  struct Piece {
    size_t slab;
    size_t offset;
    size_t length;
  };

  explicit TestSink(size_t slab_size) : slab_size_(slab_size) {}

  bool release_bytes = false;  // answer to deliver(): nobody kept the bytes

  bool deliver(const reactor::Record* records, size_t count) override {
    deliveries++;
    if (count == 0) empty_deliveries++;
    for (size_t i = 0; i < count; i++) {
      const reactor::Record r = records[i];
      this->records.push_back(r);
      if (r.kind == reactor::kData) {
        if (slabs.empty() || r.a < 0 || r.b <= 0 ||
            static_cast<size_t>(r.a) + static_cast<size_t>(r.b) > slab_size_) {
          bad_data_records++;
        } else {
          const char* base = reinterpret_cast<const char*>(slabs.back().get());
          received[packed_of(r)].append(base + r.a, static_cast<size_t>(r.b));
          pieces[packed_of(r)].push_back(
              {slabs.size() - 1, static_cast<size_t>(r.a), static_cast<size_t>(r.b)});
          all_pieces.push_back(
              {slabs.size() - 1, static_cast<size_t>(r.a), static_cast<size_t>(r.b)});
        }
      }
      if (hook) hook(r);
    }
    return release_bytes;
  }

  reactor::Slab fresh_slab() override {
    slabs.emplace_back(new uint8_t[slab_size_]);
    std::memset(slabs.back().get(), 0xEE, slab_size_);
    return {slabs.back().get(), slab_size_};
  }

  // The bytes of a connection re-read from the slabs now (they must not have
  // been overwritten since delivery).
  std::string from_slabs(uint64_t id) const {
    std::string out;
    auto it = pieces.find(id);
    if (it == pieces.end()) return out;
    for (const Piece& p : it->second) {
      out.append(reinterpret_cast<const char*>(slabs[p.slab].get()) + p.offset, p.length);
    }
    return out;
  }

  // Every region handed out is inside its slab and no two overlap.
  bool pieces_disjoint() const {
    std::map<size_t, std::vector<std::pair<size_t, size_t>>> by_slab;
    for (const Piece& p : all_pieces) by_slab[p.slab].push_back({p.offset, p.offset + p.length});
    for (auto& entry : by_slab) {
      auto& v = entry.second;
      std::sort(v.begin(), v.end());
      for (size_t i = 1; i < v.size(); i++) {
        if (v[i].first < v[i - 1].second) return false;
      }
    }
    return true;
  }

  const uint8_t* current_slab() const { return slabs.empty() ? nullptr : slabs.back().get(); }

  std::vector<reactor::Record> records;
  std::map<uint64_t, std::string> received;
  std::map<uint64_t, std::vector<Piece>> pieces;
  std::vector<Piece> all_pieces;
  std::vector<std::unique_ptr<uint8_t[]>> slabs;
  size_t deliveries = 0;
  size_t empty_deliveries = 0;
  int bad_data_records = 0;
  std::function<void(const reactor::Record&)> hook;

 private:
  size_t slab_size_;
};

struct Harness {
  explicit Harness(size_t record_capacity = 256, reactor::LoopLimits limits = {},
                   size_t slab_size = 256 * 1024)
      : sink(slab_size), buffer(record_capacity) {
    std::string error;
    std::unique_ptr<reactor::Poller> poller = reactor::make_poller(backend_under_test(), &error);
    if (poller) {
      this->poller = poller.get();
      loop = std::make_unique<reactor::Loop>(std::move(poller), &sink, buffer.data(), buffer.size(),
                                             limits);
    }
  }

  // One bounded iteration: wait on the poller fd, then one wake-up and timers.
  void step(int wait_ms) {
    loop->prepare_wait();
    testing::readable_within(loop->pollable_fd(), wait_ms);
    loop->poll();
    loop->run_timers();
  }

  template <typename Pred>
  bool pump_until(Pred pred, int timeout_ms = 5000) {
    uint64_t deadline = reactor::Loop::now_ms() + static_cast<uint64_t>(timeout_ms);
    for (;;) {
      if (pred()) return true;
      uint64_t now = reactor::Loop::now_ms();
      if (now >= deadline) return pred();
      step(static_cast<int>(std::min<uint64_t>(10, deadline - now)));
    }
  }

  void pump_for(int ms) {
    uint64_t deadline = reactor::Loop::now_ms() + static_cast<uint64_t>(ms);
    for (uint64_t now = reactor::Loop::now_ms(); now < deadline; now = reactor::Loop::now_ms()) {
      step(static_cast<int>(std::min<uint64_t>(5, deadline - now)));
    }
  }

  const reactor::Record* find(int32_t kind, uint64_t id, size_t from = 0) const {
    for (size_t i = from; i < sink.records.size(); i++) {
      const reactor::Record& r = sink.records[i];
      if (r.kind == kind && packed_of(r) == id) return &r;
    }
    return nullptr;
  }
  bool has(int32_t kind, uint64_t id) const { return find(kind, id) != nullptr; }
  size_t count(int32_t kind, uint64_t id) const {
    size_t n = 0;
    for (const reactor::Record& r : sink.records) n += r.kind == kind && packed_of(r) == id;
    return n;
  }
  size_t count_kind(int32_t kind) const {
    size_t n = 0;
    for (const reactor::Record& r : sink.records) n += r.kind == kind;
    return n;
  }
  // The record kinds for one id, in order, with consecutive kData collapsed.
  std::vector<int32_t> kinds(uint64_t id) const {
    std::vector<int32_t> out;
    for (const reactor::Record& r : sink.records) {
      if (packed_of(r) != id || r.kind == reactor::kTimer) continue;
      if (r.kind == reactor::kData && !out.empty() && out.back() == reactor::kData) continue;
      out.push_back(r.kind);
    }
    return out;
  }
  size_t received_size(uint64_t id) const {
    auto it = sink.received.find(id);
    return it == sink.received.end() ? 0 : it->second.size();
  }
  std::string received(uint64_t id) const {
    auto it = sink.received.find(id);
    return it == sink.received.end() ? std::string() : it->second;
  }

  int64_t write(uint64_t id, const std::string& bytes) {
    iovec chunk{const_cast<char*>(bytes.data()), bytes.size()};
    return loop->write(id, &chunk, 1);
  }

  int local_port(uint64_t id) {
    reactor::SocketAddress address;
    return loop->address(id, false, &address) == 0 ? address.port : -1;
  }

  TestSink sink;
  std::vector<reactor::Record> buffer;
  std::unique_ptr<reactor::Loop> loop;
  reactor::Poller* poller = nullptr;  // the loop's, for tests that reach past it
};

}  // namespace testing
