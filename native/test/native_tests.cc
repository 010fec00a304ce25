// Native unit tests: the framework's runner and main, plus the data-structure
// tests (SlotTable, TimerHeap, DeadlineHeap, WriteQueue). The reactor loop tests live in
// loop_tests.cc. Usage: native_tests [name-substring]
#ifdef _WIN32
#include <thread>
#else
#include <signal.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "../deadline_heap.h"
#include "../platform.h"
#include "../slot_table.h"
#include "../timer_heap.h"
#include "../write_queue.h"
#include "test_framework.h"

namespace testing {

namespace {
const char* g_current = "";
int g_current_failures = 0;
}  // namespace

std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}

void report_failure(const char* file, int line, const std::string& message) {
  g_current_failures++;
  std::printf("%s:%d: FAILED in %s: %s\n", file, line, g_current, message.c_str());
  std::fflush(stdout);
}

int run_all(const std::string& filter) {
  int passed = 0;
  int failed = 0;
  for (const TestCase& test : registry()) {
    if (!filter.empty() && std::string(test.name).find(filter) == std::string::npos) continue;
    g_current = test.name;
    g_current_failures = 0;
    auto start = std::chrono::steady_clock::now();
    try {
      test.fn();
    } catch (const std::exception& e) {
      report_failure(test.file, test.line, std::string("uncaught exception: ") + e.what());
    } catch (...) {
      report_failure(test.file, test.line, "uncaught exception");
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    if (g_current_failures == 0) {
      passed++;
      std::printf("ok    %s (%lld ms)\n", test.name, static_cast<long long>(ms));
    } else {
      failed++;
      std::printf("FAIL  %s (%d failed checks, %lld ms)\n", test.name, g_current_failures,
                  static_cast<long long>(ms));
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  std::fflush(stdout);
  return failed == 0 ? 0 : 1;
}

}  // namespace testing

namespace {

const char kWatchdogMessage[] =
    "native_tests: watchdog expired (a test hung)\n0 passed, 1 failed\n";

#ifdef _WIN32
// No SIGALRM: a thread that ends the process if the run takes too long.
void start_watchdog(int seconds) {
  std::thread([seconds] {
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    std::fputs(kWatchdogMessage, stdout);
    std::fflush(stdout);
    std::_Exit(2);
  }).detach();
}
#else
void on_watchdog(int) {
  ssize_t ignored = ::write(STDOUT_FILENO, kWatchdogMessage, sizeof kWatchdogMessage - 1);
  (void)ignored;
  _exit(2);
}

void start_watchdog(int seconds) {
  signal(SIGALRM, on_watchdog);
  alarm(static_cast<unsigned>(seconds));
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (int error = reactor::net_init()) {
    std::printf("native_tests: no socket layer (errno %d)\n", error);
    return 1;
  }
  start_watchdog(50);
  return testing::run_all(argc > 1 ? argv[1] : "");
}

// ============================================================================
// SlotTable
// ============================================================================

using reactor::DeadlineHeap;
using reactor::Id;
using reactor::kGenerationMask;
using reactor::kMaxSlots;
using reactor::kSlotBits;
using reactor::SlotTable;
using reactor::TimerHeap;
using reactor::WriteQueue;

TEST(slot_table_allocate_get_release) {
  SlotTable<int> table;
  CHECK_EQ(table.used(), 0u);
  Id a, b;
  REQUIRE(table.allocate(&a));
  REQUIRE(table.allocate(&b));
  CHECK_EQ(a.slot, 0u);
  CHECK_EQ(b.slot, 1u);
  CHECK_EQ(a.gen, 0u);
  REQUIRE(table.get(a) != nullptr);
  REQUIRE(table.get(b) != nullptr);
  CHECK(table.get(a) != table.get(b));
  CHECK_EQ(*table.get(a), 0);  // value-initialised
  *table.get(a) = 11;
  *table.get(b) = 22;
  CHECK_EQ(*table.get(a), 11);
  CHECK_EQ(*table.get(b), 22);
  CHECK_EQ(table.used(), 2u);

  table.release(a);
  CHECK(table.get(a) == nullptr);
  CHECK_EQ(*table.get(b), 22);
  CHECK_EQ(table.used(), 1u);
  // Releasing twice (a stale id) changes nothing.
  table.release(a);
  CHECK_EQ(table.used(), 1u);
  CHECK_EQ(*table.get(b), 22);

  // Out-of-range slots are simply absent.
  CHECK(table.get(Id{12345, 0}) == nullptr);
  Id live;
  CHECK(!table.live_at(0, &live));
  CHECK(table.live_at(1, &live));
  CHECK_EQ(live.slot, b.slot);
  CHECK_EQ(live.gen, b.gen);
  CHECK(!table.live_at(99, &live));
}

TEST(slot_table_released_id_stays_stale_after_reuse) {
  SlotTable<int> table;
  Id a;
  REQUIRE(table.allocate(&a));
  *table.get(a) = 7;
  table.release(a);
  Id reused;
  REQUIRE(table.allocate(&reused));
  CHECK_EQ(reused.slot, a.slot);
  CHECK(reused.gen != a.gen);
  CHECK_EQ(reused.gen, (a.gen + 1) & kGenerationMask);
  CHECK(table.get(a) == nullptr);  // the stale id never reaches the new occupant
  REQUIRE(table.get(reused) != nullptr);
  CHECK_EQ(*table.get(reused), 0);  // the new occupant starts fresh
  // Releasing the stale id must not free the new occupant.
  table.release(a);
  CHECK(table.get(reused) != nullptr);
  CHECK_EQ(table.used(), 1u);
}

TEST(slot_table_lifo_reuse) {
  SlotTable<int> table;
  Id ids[5];
  for (Id& id : ids) REQUIRE(table.allocate(&id));
  table.release(ids[1]);
  table.release(ids[3]);
  table.release(ids[0]);
  Id x, y, z, w;
  REQUIRE(table.allocate(&x));
  REQUIRE(table.allocate(&y));
  REQUIRE(table.allocate(&z));
  REQUIRE(table.allocate(&w));
  CHECK_EQ(x.slot, 0u);  // last released first
  CHECK_EQ(y.slot, 3u);
  CHECK_EQ(z.slot, 1u);
  CHECK_EQ(w.slot, 5u);  // free list empty: grows
  CHECK_EQ(table.capacity(), 6u);
  CHECK_EQ(table.used(), 6u);
}

TEST(slot_table_pointers_stable_while_growing) {
  SlotTable<int> table;
  Id first;
  REQUIRE(table.allocate(&first));
  int* p = table.get(first);
  *p = 42;
  for (int i = 0; i < 10000; i++) {
    Id id;
    REQUIRE(table.allocate(&id));
  }
  CHECK(table.get(first) == p);
  CHECK_EQ(*p, 42);
  CHECK_EQ(table.used(), 10001u);
}

TEST(slot_table_generation_wraps_within_mask) {
  // 2^29 release/allocate cycles on one slot: the generation must count up to
  // kGenerationMask and wrap to 0, never leaving the mask.
  SlotTable<uint8_t> table;
  Id id;
  REQUIRE(table.allocate(&id));
  CHECK_EQ(id.gen, 0u);
  bool in_mask = true;
  uint32_t expected = 0;
  for (uint32_t i = 0; i < kGenerationMask; i++) {
    table.release(id);
    table.allocate(&id);
    expected++;
    if (id.gen != expected || id.slot != 0) {
      in_mask = false;
      break;
    }
  }
  CHECK(in_mask);
  CHECK_EQ(id.gen, kGenerationMask);
  Id before = id;
  table.release(id);
  REQUIRE(table.allocate(&id));
  CHECK_EQ(id.gen, 0u);  // wrapped
  CHECK_EQ(id.slot, 0u);
  CHECK(table.get(before) == nullptr);
  CHECK(table.get(id) != nullptr);
  // The packed form of the wrapped id round-trips.
  Id round = Id::unpack(id.packed());
  CHECK_EQ(round.gen, 0u);
  CHECK_EQ(round.slot, 0u);
  CHECK_EQ(table.used(), 1u);
}

TEST(slot_id_pack_unpack_round_trip) {
  const uint32_t max_slot = kMaxSlots - 1;
  const uint32_t max_gen = kGenerationMask;
  const Id cases[] = {{0, 0},          {1, 0},
                      {0, 1},          {max_slot, 0},
                      {0, max_gen},    {max_slot, max_gen},
                      {123456, 98765}, {max_slot - 1, max_gen - 1}};
  for (const Id& id : cases) {
    uint64_t packed = id.packed();
    // Exact in a double (JavaScript numbers): below 2^53.
    CHECK(packed < (uint64_t{1} << 53));
    double as_double = static_cast<double>(packed);
    CHECK_EQ(static_cast<uint64_t>(as_double), packed);
    Id back = Id::unpack(static_cast<uint64_t>(as_double));
    CHECK_EQ(back.slot, id.slot);
    CHECK_EQ(back.gen, id.gen);
    CHECK_EQ(packed, static_cast<uint64_t>(id.gen) * (uint64_t{1} << kSlotBits) + id.slot);
  }
  CHECK_EQ(Id({max_slot, max_gen}).packed(), (uint64_t{1} << 53) - 1);
  // Distinct ids pack to distinct numbers.
  CHECK(Id({1, 0}).packed() != Id({0, 1}).packed());
}

TEST(slot_table_used_counts) {
  SlotTable<int> table;
  std::vector<Id> ids;
  for (int i = 0; i < 100; i++) {
    Id id;
    REQUIRE(table.allocate(&id));
    ids.push_back(id);
    CHECK_EQ(table.used(), static_cast<size_t>(i + 1));
  }
  for (int i = 0; i < 100; i += 2) table.release(ids[i]);
  CHECK_EQ(table.used(), 50u);
  for (int i = 0; i < 100; i += 2) table.release(ids[i]);  // stale: no change
  CHECK_EQ(table.used(), 50u);
  size_t live = 0;
  for (uint32_t s = 0; s < table.capacity(); s++) {
    Id id;
    if (table.live_at(s, &id)) live++;
  }
  CHECK_EQ(live, 50u);
  CHECK_EQ(table.capacity(), 100u);
}

// ============================================================================
// TimerHeap
// ============================================================================

TEST(timer_heap_pops_by_deadline) {
  TimerHeap heap;
  const uint64_t deadlines[] = {50, 10, 40, 20, 30, 5, 100, 1};
  std::map<uint64_t, uint64_t> by_packed;  // packed id -> deadline
  for (uint64_t d : deadlines) {
    Id id;
    REQUIRE(heap.start(d, &id));
    by_packed[id.packed()] = d;
  }
  CHECK_EQ(heap.size(), 8u);
  CHECK_EQ(heap.next_deadline(), 1u);
  Id id;
  CHECK(!heap.pop_expired(0, &id));  // nothing due yet
  std::vector<uint64_t> popped;
  while (heap.pop_expired(1000, &id)) popped.push_back(by_packed[id.packed()]);
  std::vector<uint64_t> sorted(std::begin(deadlines), std::end(deadlines));
  std::sort(sorted.begin(), sorted.end());
  CHECK(popped == sorted);
  CHECK_EQ(heap.size(), 0u);
  CHECK_EQ(heap.next_deadline(), TimerHeap::kNever);
}

TEST(timer_heap_pop_respects_now) {
  TimerHeap heap;
  Id a, b, c, out;
  REQUIRE(heap.start(10, &a));
  REQUIRE(heap.start(20, &b));
  REQUIRE(heap.start(30, &c));
  CHECK(heap.pop_expired(20, &out));
  CHECK_EQ(out.packed(), a.packed());
  CHECK(heap.pop_expired(20, &out));  // deadline == now is due
  CHECK_EQ(out.packed(), b.packed());
  CHECK(!heap.pop_expired(29, &out));
  CHECK_EQ(heap.next_deadline(), 30u);
  CHECK(!heap.active(a));
  CHECK(!heap.active(b));
  CHECK(heap.active(c));
}

TEST(timer_heap_equal_deadlines_pop_in_start_order) {
  TimerHeap heap;
  std::vector<uint64_t> started;
  for (int i = 0; i < 50; i++) {
    Id id;
    REQUIRE(heap.start(i % 2 == 0 ? 7 : 3, &id));
    started.push_back(id.packed());
  }
  std::vector<uint64_t> expected;
  for (int i = 1; i < 50; i += 2) expected.push_back(started[i]);
  for (int i = 0; i < 50; i += 2) expected.push_back(started[i]);
  std::vector<uint64_t> popped;
  Id id;
  while (heap.pop_expired(7, &id)) popped.push_back(id.packed());
  CHECK(popped == expected);
}

TEST(timer_heap_cancel_first_middle_last) {
  for (int which = 0; which < 3; which++) {
    TimerHeap heap;
    std::vector<Id> ids(15);
    for (int i = 0; i < 15; i++) REQUIRE(heap.start(static_cast<uint64_t>(100 + i * 10), &ids[i]));
    int victim = which == 0 ? 0 : which == 1 ? 7 : 14;
    CHECK(heap.cancel(ids[victim]));
    CHECK(!heap.active(ids[victim]));
    CHECK(!heap.cancel(ids[victim]));  // already gone
    CHECK_EQ(heap.size(), 14u);
    std::vector<uint64_t> popped, expected;
    for (int i = 0; i < 15; i++) {
      if (i != victim) expected.push_back(ids[i].packed());
    }
    Id id;
    while (heap.pop_expired(UINT64_MAX - 1, &id)) popped.push_back(id.packed());
    CHECK_MSG(popped == expected, "victim " << victim);
  }
}

TEST(timer_heap_reset_earlier_and_later) {
  TimerHeap heap;
  Id a, b, c, out;
  REQUIRE(heap.start(10, &a));
  REQUIRE(heap.start(20, &b));
  REQUIRE(heap.start(30, &c));
  CHECK(heap.reset(c, 5));  // earlier: c first
  CHECK_EQ(heap.next_deadline(), 5u);
  CHECK(heap.reset(a, 40));  // later: a last
  CHECK(heap.reset(b, 20));  // same deadline: still between
  std::vector<uint64_t> popped;
  while (heap.pop_expired(100, &out)) popped.push_back(out.packed());
  std::vector<uint64_t> expected = {c.packed(), b.packed(), a.packed()};
  CHECK(popped == expected);

  // A reset to an equal deadline moves behind timers already set to it.
  TimerHeap h2;
  Id x, y, z;
  REQUIRE(h2.start(10, &x));
  REQUIRE(h2.start(10, &y));
  REQUIRE(h2.start(10, &z));
  CHECK(h2.reset(x, 10));
  popped.clear();
  while (h2.pop_expired(10, &out)) popped.push_back(out.packed());
  expected = {y.packed(), z.packed(), x.packed()};
  CHECK(popped == expected);
}

TEST(timer_heap_counts_timers_keeping_alive) {
  TimerHeap heap;
  Id a, b, c, out;
  REQUIRE(heap.start(10, &a));
  REQUIRE(heap.start(20, &b));
  REQUIRE(heap.start(30, &c));
  CHECK_EQ(heap.keeping_alive(), 3u);
  CHECK(heap.set_keeps_alive(b, false));
  CHECK(heap.set_keeps_alive(b, false));  // idempotent
  CHECK_EQ(heap.keeping_alive(), 2u);
  CHECK(heap.cancel(c));  // a cancelled timer stops counting
  CHECK_EQ(heap.keeping_alive(), 1u);
  REQUIRE(heap.pop_expired(10, &out));  // so does a fired one
  CHECK_EQ(heap.keeping_alive(), 0u);
  REQUIRE(heap.pop_expired(20, &out));  // an unref'd one leaves the count alone
  CHECK_EQ(out.packed(), b.packed());
  CHECK_EQ(heap.keeping_alive(), 0u);
  CHECK(!heap.set_keeps_alive(b, true));  // gone
  CHECK_EQ(heap.keeping_alive(), 0u);
}

TEST(timer_heap_stale_ids_rejected) {
  TimerHeap heap;
  Id a, out;
  REQUIRE(heap.start(10, &a));
  CHECK(heap.active(a));
  REQUIRE(heap.pop_expired(10, &out));
  CHECK_EQ(out.packed(), a.packed());
  CHECK(!heap.active(a));
  CHECK(!heap.cancel(a));
  CHECK(!heap.reset(a, 50));
  CHECK_EQ(heap.size(), 0u);
  // The slot is reused by a new timer; the old id must not touch it.
  Id b;
  REQUIRE(heap.start(20, &b));
  CHECK_EQ(b.slot, a.slot);
  CHECK(b.gen != a.gen);
  CHECK(!heap.active(a));
  CHECK(!heap.cancel(a));
  CHECK(!heap.reset(a, 1));
  CHECK(heap.active(b));
  CHECK_EQ(heap.next_deadline(), 20u);
  // Cancelled ids are stale as well.
  CHECK(heap.cancel(b));
  CHECK(!heap.active(b));
  CHECK(!heap.reset(b, 5));
  CHECK_EQ(heap.size(), 0u);
  // Ids never issued.
  CHECK(!heap.cancel(Id{999, 0}));
  CHECK(!heap.active(Id{999, 0}));
}

TEST(timer_heap_randomised_against_model) {
  // Model: std::map keyed by (deadline, sequence) -> packed id, with a
  // per-id index of the key. Sequence numbers mirror the heap's: each start
  // and reset takes the next one.
  std::mt19937_64 rng(20240601);
  TimerHeap heap;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> model;
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> key_of;  // packed -> model key
  std::vector<uint64_t> retired;                             // popped/cancelled ids
  uint64_t seq = 0;
  uint64_t now = 0;
  int mismatches = 0;
  auto mismatch = [&](const char* what, int step) {
    if (mismatches++ < 5) {
      testing::report_failure(
          __FILE__, __LINE__,
          std::string("model mismatch on ") + what + " at step " + std::to_string(step));
    }
  };
  auto random_live = [&]() -> uint64_t {
    auto it = key_of.begin();
    std::advance(it, static_cast<long>(rng() % key_of.size()));
    return it->first;
  };
  for (int step = 0; step < 10000; step++) {
    unsigned op = static_cast<unsigned>(rng() % 100);
    if (op < 35 || key_of.empty()) {
      uint64_t deadline = now + rng() % 64;  // narrow range: many equal deadlines
      Id id;
      if (!heap.start(deadline, &id)) {
        mismatch("start", step);
        continue;
      }
      if (key_of.count(id.packed())) mismatch("start returned a live id", step);
      auto key = std::make_pair(deadline, seq++);
      model[key] = id.packed();
      key_of[id.packed()] = key;
    } else if (op < 55) {
      uint64_t packed = random_live();
      if (!heap.cancel(Id::unpack(packed))) mismatch("cancel", step);
      model.erase(key_of[packed]);
      key_of.erase(packed);
      retired.push_back(packed);
    } else if (op < 75) {
      uint64_t packed = random_live();
      uint64_t deadline = now + rng() % 64;
      if (!heap.reset(Id::unpack(packed), deadline)) mismatch("reset", step);
      model.erase(key_of[packed]);
      auto key = std::make_pair(deadline, seq++);
      model[key] = packed;
      key_of[packed] = key;
    } else if (op < 90) {
      now += rng() % 8;
      Id id;
      for (;;) {
        bool expect = !model.empty() && model.begin()->first.first <= now;
        bool got = heap.pop_expired(now, &id);
        if (got != expect) {
          mismatch("pop_expired presence", step);
          break;
        }
        if (!got) break;
        uint64_t want = model.begin()->second;
        if (id.packed() != want) mismatch("pop_expired order", step);
        model.erase(model.begin());
        key_of.erase(want);
        retired.push_back(want);
      }
    } else {
      // Stale ids must be refused and must not disturb anything.
      if (!retired.empty()) {
        uint64_t packed = retired[rng() % retired.size()];
        if (!key_of.count(packed)) {
          if (heap.active(Id::unpack(packed))) mismatch("stale active", step);
          if (heap.cancel(Id::unpack(packed))) mismatch("stale cancel", step);
          if (heap.reset(Id::unpack(packed), now)) mismatch("stale reset", step);
        }
      }
    }
    if (heap.size() != model.size()) mismatch("size", step);
    uint64_t next = model.empty() ? TimerHeap::kNever : model.begin()->first.first;
    if (heap.next_deadline() != next) mismatch("next_deadline", step);
  }
  // Drain everything and compare the final order.
  Id id;
  while (!model.empty()) {
    if (!heap.pop_expired(UINT64_MAX - 1, &id)) {
      mismatch("final drain presence", -1);
      break;
    }
    if (id.packed() != model.begin()->second) mismatch("final drain order", -1);
    model.erase(model.begin());
  }
  CHECK_EQ(heap.size(), 0u);
  CHECK_EQ(mismatches, 0);
}

// ============================================================================
// DeadlineHeap
// ============================================================================

TEST(deadline_heap_against_a_reference_model) {
  // 20k random set / move / clear / pop operations over 500 slots, checked
  // against a std::map after each one: the minimum, membership and size.
  DeadlineHeap heap;
  std::map<uint32_t, uint64_t> model;  // slot -> deadline
  std::mt19937 rng(4242);
  auto model_min = [&] {
    uint64_t best = DeadlineHeap::kNever;
    for (const auto& [slot, deadline] : model) best = std::min(best, deadline);
    return best;
  };
  for (int step = 0; step < 20000; step++) {
    uint32_t slot = rng() % 500;
    switch (rng() % 4) {
      case 0:
      case 1: {
        uint64_t deadline = rng() % 100000;
        heap.set(slot, deadline);
        model[slot] = deadline;
        break;
      }
      case 2:
        heap.clear(slot);
        model.erase(slot);
        break;
      case 3:
        if (!model.empty()) {
          uint32_t top = heap.next_slot();
          REQUIRE(model.count(top) == 1);
          CHECK_EQ(model[top], heap.next_deadline());
          heap.clear(top);
          model.erase(top);
        }
        break;
    }
    REQUIRE(heap.size() == model.size());
    REQUIRE(heap.next_deadline() == model_min());
    REQUIRE(heap.contains(slot) == (model.count(slot) == 1));
  }
}

TEST(deadline_heap_clear_of_absent_slot_is_harmless) {
  DeadlineHeap heap;
  heap.clear(7);  // never set, beyond the position table
  heap.set(3, 10);
  heap.clear(3);
  heap.clear(3);
  CHECK_EQ(heap.size(), 0u);
  CHECK_EQ(heap.next_deadline(), DeadlineHeap::kNever);
}

// ============================================================================
// WriteQueue
// ============================================================================

namespace {

std::string queue_contents(const WriteQueue& q) {
  if (q.empty()) return "";
  return std::string(reinterpret_cast<const char*>(q.data()), q.size());
}

iovec chunk_of(const std::string& s) { return iovec{const_cast<char*>(s.data()), s.size()}; }

}  // namespace

TEST(write_queue_append_with_skip_across_chunks) {
  std::string a = "hello", b = "", c = "world", d = "!!";
  iovec chunks[] = {chunk_of(a), chunk_of(b), chunk_of(c), chunk_of(d)};
  for (size_t skip = 0; skip <= 12; skip++) {
    WriteQueue q;
    q.append(chunks, 4, skip);
    std::string all = a + b + c + d;
    CHECK_EQ(queue_contents(q), all.substr(skip));
    CHECK_EQ(q.size(), all.size() - skip);
    CHECK_EQ(q.empty(), skip == all.size());
  }
  WriteQueue q;
  CHECK(q.empty());
  CHECK_EQ(q.size(), 0u);
  q.append(chunks, 0, 0);
  CHECK(q.empty());
  // Appending onto existing content keeps order.
  q.append(chunks, 1, 3);      // "lo"
  q.append(chunks + 2, 2, 4);  // "d!!"
  CHECK_EQ(queue_contents(q), std::string("lod!!"));
}

TEST(write_queue_consume) {
  WriteQueue q;
  std::string s = "abcdefghij";
  iovec chunk = chunk_of(s);
  q.append(&chunk, 1, 0);
  q.consume(3);
  CHECK_EQ(queue_contents(q), std::string("defghij"));
  CHECK_EQ(q.size(), 7u);
  q.consume(7);
  CHECK(q.empty());
  CHECK_EQ(q.size(), 0u);
  q.append(&chunk, 1, 8);
  CHECK_EQ(queue_contents(q), std::string("ij"));
  q.clear();
  CHECK(q.empty());
}

TEST(write_queue_compaction_keeps_bytes_intact) {
  // Append 1 MiB in irregular pieces while consuming irregular amounts (never
  // draining fully until the end), and check every byte that comes out.
  const size_t total = 1 << 20;
  std::vector<uint8_t> source(total);
  std::mt19937 rng(7);
  for (size_t i = 0; i < total; i++) source[i] = static_cast<uint8_t>(rng());
  WriteQueue q;
  size_t appended = 0, consumed = 0;
  size_t max_size = 0;
  int bad = 0;
  while (consumed < total) {
    if (appended < total) {
      size_t n = std::min<size_t>(total - appended, 1 + rng() % 40000);
      // Split into two chunks and skip a random prefix that "was sent" by
      // consuming it from the source directly.
      size_t split = rng() % (n + 1);
      iovec chunks[2] = {{source.data() + appended, split},
                         {source.data() + appended + split, n - split}};
      size_t skip = 0;
      if (q.empty() && rng() % 4 == 0) {
        skip = rng() % (n + 1);
        // Bytes skipped count as already delivered.
        consumed += skip;
      }
      q.append(chunks, 2, skip);
      appended += n;
    }
    max_size = std::max(max_size, q.size());
    if (q.size() != appended - consumed) {
      bad++;
      break;
    }
    size_t take = q.size() == 0 ? 0 : rng() % (q.size() + 1);
    if (appended < total && take == q.size() && take > 0) take--;  // keep a tail queued
    if (take > 0 && std::memcmp(q.data(), source.data() + consumed, take) != 0) {
      bad++;
      break;
    }
    q.consume(take);
    consumed += take;
    if (q.size() > 0 && q.data()[0] != source[consumed]) {
      bad++;
      break;
    }
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(consumed, total);
  CHECK(q.empty());
  CHECK(max_size > 64 * 1024);  // the compaction threshold was exercised
}

TEST(write_queue_compaction_after_large_prefix) {
  // Directly exercise the compaction branch: queue 200 KiB, consume 150 KiB
  // (past the 64 KiB threshold and more than half), then check the rest.
  std::vector<uint8_t> bytes(200 * 1024);
  for (size_t i = 0; i < bytes.size(); i++) bytes[i] = static_cast<uint8_t>(i * 31 + (i >> 9));
  WriteQueue q;
  iovec chunk{bytes.data(), bytes.size()};
  q.append(&chunk, 1, 0);
  q.consume(150 * 1024);
  CHECK_EQ(q.size(), 50u * 1024);
  CHECK(std::memcmp(q.data(), bytes.data() + 150 * 1024, 50 * 1024) == 0);
  q.append(&chunk, 1, 0);
  CHECK_EQ(q.size(), 250u * 1024);
  CHECK(std::memcmp(q.data(), bytes.data() + 150 * 1024, 50 * 1024) == 0);
  CHECK(std::memcmp(q.data() + 50 * 1024, bytes.data(), bytes.size()) == 0);
}
