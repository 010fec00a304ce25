// IdleLists on its own: each timeout's list keeps its slots in the order
// their clocks started, removal works anywhere, a restarted clock moves its
// slot to the back, the earliest deadline is found across lists, and a
// timeout past the last free list is refused. A long random run checks the
// deadlines against a model that sorts every clock.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "../idle_lists.h"
#include "test_framework.h"

namespace {

using reactor::IdleLinks;

struct Node {
  IdleLinks links;
  uint64_t last_active = 0;
};

struct Nodes {
  std::vector<Node>* nodes;
  IdleLinks& links(uint32_t slot) { return (*nodes)[slot].links; }
  uint64_t last_active(uint32_t slot) const { return (*nodes)[slot].last_active; }
};

using Lists = reactor::IdleLists<Nodes>;

struct Fixture {
  std::vector<Node> nodes{64};
  Lists lists{Nodes{&nodes}};

  // The slot's clock starts at `at` and it joins the list of `ms`.
  bool start(uint32_t slot, uint32_t ms, uint64_t at) {
    nodes[slot].last_active = at;
    return lists.push_back(slot, ms);
  }
  void restart(uint32_t slot, uint32_t ms, uint64_t at) {
    nodes[slot].last_active = at;
    lists.move_to_back(slot, ms);
  }
  // Takes every slot out in deadline order, as the loop reaps them.
  std::vector<uint32_t> drain() {
    std::vector<uint32_t> order;
    while (lists.next_deadline() != Lists::kNever) {
      uint32_t slot = lists.next_slot();
      lists.remove(slot);
      order.push_back(slot);
    }
    return order;
  }
};

}  // namespace

TEST(idle_lists_keep_the_order_clocks_started_in) {
  Fixture f;
  CHECK_EQ(f.lists.next_deadline(), Lists::kNever);
  f.start(5, 100, 10);
  f.start(2, 100, 10);  // same start: after 5, which came first
  f.start(9, 100, 11);
  CHECK_EQ(f.lists.next_deadline(), uint64_t{110});
  CHECK_EQ(f.lists.next_slot(), uint32_t{5});
  CHECK(f.drain() == (std::vector<uint32_t>{5, 2, 9}));
  CHECK(!f.nodes[5].links.linked());
}

TEST(idle_lists_remove_the_head_a_middle_slot_and_the_tail) {
  Fixture f;
  for (uint32_t slot = 0; slot < 5; slot++) f.start(slot, 50, slot);
  f.lists.remove(2);  // middle
  f.lists.remove(0);  // head
  f.lists.remove(4);  // tail
  f.lists.remove(4);  // again: nothing
  CHECK_EQ(f.lists.next_deadline(), uint64_t{51});
  CHECK(f.drain() == (std::vector<uint32_t>{1, 3}));
  // Emptied, the list takes slots again.
  CHECK(f.start(4, 50, 9));
  CHECK(f.drain() == (std::vector<uint32_t>{4}));
}

TEST(idle_lists_move_a_restarted_clock_to_the_back) {
  Fixture f;
  for (uint32_t slot = 0; slot < 4; slot++) f.start(slot, 30, 0);
  f.restart(0, 30, 5);  // head to the back
  f.restart(2, 30, 6);  // middle to the back
  f.restart(2, 30, 7);  // already last: stays
  CHECK_EQ(f.lists.next_slot(), uint32_t{1});
  CHECK_EQ(f.lists.next_deadline(), uint64_t{30});
  CHECK(f.drain() == (std::vector<uint32_t>{1, 3, 0, 2}));
  // An unlinked slot is not moved into a list.
  f.restart(7, 30, 8);
  CHECK(!f.nodes[7].links.linked());
  CHECK_EQ(f.lists.next_deadline(), Lists::kNever);
}

TEST(idle_lists_find_the_earliest_deadline_across_timeouts) {
  Fixture f;
  f.start(1, 1000, 0);  // due 1000
  f.start(2, 100, 0);   // due 100
  f.start(3, 500, 0);   // due 500
  f.start(4, 100, 50);  // due 150
  CHECK(f.drain() == (std::vector<uint32_t>{2, 4, 3, 1}));
}

TEST(idle_lists_refuse_a_timeout_past_the_last_free_list) {
  Fixture f;
  for (uint32_t i = 0; i < Lists::kMaxLists; i++) CHECK(f.start(i, 10 + i, 0));
  CHECK(!f.start(20, 99, 0));
  CHECK(!f.nodes[20].links.linked());
  CHECK(f.start(21, 10, 0));  // a timeout that has a list still joins it
  f.lists.remove(1);          // the list of 11 is empty now: 99 may take it
  CHECK(f.start(20, 99, 0));
  CHECK_EQ(f.drain().size(), size_t{Lists::kMaxLists + 1});
}

TEST(idle_lists_random_operations_against_a_sorted_model) {
  Fixture f;
  std::mt19937 random(12);
  const uint32_t timeouts[] = {40, 90, 250};
  std::vector<uint32_t> ms_of(f.nodes.size(), 0);  // 0: not in a list
  uint64_t now = 0;
  for (int step = 0; step < 20000; step++) {
    now += random() % 3;
    uint32_t slot = random() % f.nodes.size();
    switch (random() % 4) {
      case 0:  // (re)start with a timeout, as set_idle_timeout does
        f.lists.remove(slot);
        ms_of[slot] = timeouts[random() % 3];
        CHECK(f.start(slot, ms_of[slot], now));
        break;
      case 1:
        if (ms_of[slot]) f.restart(slot, ms_of[slot], now);
        break;
      case 2:
        f.lists.remove(slot);
        ms_of[slot] = 0;
        break;
      case 3: {  // the next one comes due
        uint64_t earliest = Lists::kNever;
        for (uint32_t s = 0; s < f.nodes.size(); s++) {
          if (ms_of[s]) earliest = std::min(earliest, f.nodes[s].last_active + ms_of[s]);
        }
        REQUIRE(f.lists.next_deadline() == earliest);
        if (earliest == Lists::kNever) break;
        uint32_t due = f.lists.next_slot();
        CHECK_EQ(f.nodes[due].last_active + ms_of[due], earliest);
        f.lists.remove(due);
        ms_of[due] = 0;
        break;
      }
    }
  }
}
