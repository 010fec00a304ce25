// IndexedHeap on its own: order (equal keys first in, first out through a
// sequence number, as TimerHeap orders them), removal from anywhere, moves in
// both directions, and a long random run against a sorted model. After every
// step each entry's recorded position must point back at it.
#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "../indexed_heap.h"
#include "test_framework.h"

namespace {

struct Item {
  uint64_t key;
  uint64_t seq;
  uint32_t id;
  bool before(const Item& other) const {
    return key != other.key ? key < other.key : seq < other.seq;
  }
};

constexpr size_t kNowhere = SIZE_MAX;

struct ItemPositions {
  std::vector<size_t> of;  // by id; kNowhere when not in the heap
  void placed(const Item& item, size_t index) { of[item.id] = index; }
};

using Heap = reactor::IndexedHeap<Item, ItemPositions>;

// A heap for ids below `ids`, none in it yet.
void prepare(Heap* heap, uint32_t ids) { heap->positions().of.assign(ids, kNowhere); }

// Every entry sits where its position says, and no child comes before its parent.
bool consistent(Heap& heap) {
  for (size_t i = 0; i < heap.size(); i++) {
    if (heap.positions().of[heap.at(i).id] != i) return false;
    if (i > 0 && heap.at(i).before(heap.at((i - 1) / 2))) return false;
  }
  return true;
}

// Pops everything: the ids in the order they came out.
std::vector<uint32_t> drain(Heap& heap) {
  std::vector<uint32_t> ids;
  while (!heap.empty()) {
    Item item = heap.pop();
    heap.positions().of[item.id] = kNowhere;
    ids.push_back(item.id);
  }
  return ids;
}

}  // namespace

TEST(indexed_heap_pops_by_key_and_equal_keys_in_push_order) {
  Heap heap;
  prepare(&heap, 60);
  uint64_t seq = 0;
  for (uint32_t id = 0; id < 60; id++) {
    heap.push({(id * 7) % 3, seq++, id});  // keys 0, 1, 2, 0, 1, 2...
    REQUIRE(consistent(heap));
  }
  CHECK_EQ(heap.size(), 60u);
  CHECK_EQ(heap.top().id, 0u);
  std::vector<uint32_t> expected;
  for (uint64_t key = 0; key < 3; key++) {
    for (uint32_t id = 0; id < 60; id++) {
      if ((id * 7) % 3 == key) expected.push_back(id);
    }
  }
  CHECK(drain(heap) == expected);
  CHECK(heap.empty());
}

TEST(indexed_heap_removes_from_the_middle_a_leaf_and_the_top) {
  Heap heap;
  prepare(&heap, 31);
  std::mt19937 rng(31);
  std::vector<uint32_t> order(31);
  for (uint32_t id = 0; id < 31; id++) order[id] = id;
  std::shuffle(order.begin(), order.end(), rng);
  uint64_t seq = 0;
  for (uint32_t id : order) heap.push({id * 10u, seq++, id});  // key order = id order

  std::set<uint32_t> removed;
  auto remove = [&](size_t index) {
    uint32_t id = heap.at(index).id;
    Item out = heap.remove_at(index);
    CHECK_EQ(out.id, id);
    CHECK_EQ(out.key, id * 10u);
    heap.positions().of[id] = kNowhere;
    removed.insert(id);
    CHECK(consistent(heap));
  };
  remove(heap.positions().of[17]);  // wherever it sits
  remove(heap.size() / 2);          // the middle
  remove(heap.size() - 1);          // the last leaf: nothing moves into its place
  remove(0);                        // the top
  CHECK_EQ(heap.size(), 27u);

  std::vector<uint32_t> expected;
  for (uint32_t id = 0; id < 31; id++) {
    if (!removed.count(id)) expected.push_back(id);
  }
  CHECK(drain(heap) == expected);
}

TEST(indexed_heap_update_moves_an_entry_up_and_down) {
  Heap heap;
  prepare(&heap, 20);
  uint64_t seq = 0;
  for (uint32_t id = 0; id < 20; id++) heap.push({100 + id, seq++, id});

  size_t at = heap.positions().of[15];
  heap.at(at).key = 1;  // earlier than all: up to the top
  heap.update(at);
  CHECK(consistent(heap));
  CHECK_EQ(heap.top().id, 15u);
  CHECK_EQ(heap.positions().of[15], 0u);

  heap.at(0).key = 1000;  // later than all: down to a leaf
  heap.update(0);
  CHECK(consistent(heap));
  CHECK_EQ(heap.top().id, 0u);
  CHECK(2 * heap.positions().of[15] + 1 >= heap.size());

  at = heap.positions().of[7];
  heap.at(at).key = 107;  // unchanged: stays put
  heap.update(at);
  CHECK_EQ(heap.positions().of[7], at);

  std::vector<uint32_t> expected;
  for (uint32_t id = 0; id < 20; id++) {
    if (id != 15) expected.push_back(id);
  }
  expected.push_back(15);
  CHECK(drain(heap) == expected);
}

TEST(indexed_heap_random_operations_against_a_sorted_model) {
  // 20k pushes, removals, updates and pops over 300 ids, each followed by a
  // comparison with a std::set ordered like the heap.
  constexpr uint32_t kIds = 300;
  Heap heap;
  prepare(&heap, kIds);
  std::set<std::tuple<uint64_t, uint64_t, uint32_t>> model;  // (key, seq, id)
  std::vector<Item> live(kIds);                              // the model's item by id
  std::vector<bool> in(kIds, false);
  std::mt19937_64 rng(20250611);
  uint64_t seq = 0;
  int failures = 0;
  for (int step = 0; step < 20000 && failures == 0; step++) {
    uint32_t id = static_cast<uint32_t>(rng() % kIds);
    uint64_t key = rng() % 50;  // narrow: many equal keys
    switch (rng() % 4) {
      case 0:
        if (!in[id]) {
          live[id] = {key, seq++, id};
          heap.push(live[id]);
          model.insert({key, live[id].seq, id});
          in[id] = true;
        }
        break;
      case 1:
        if (in[id]) {
          Item out = heap.remove_at(heap.positions().of[id]);
          if (out.id != id) failures++;
          heap.positions().of[id] = kNowhere;
          model.erase({live[id].key, live[id].seq, id});
          in[id] = false;
        }
        break;
      case 2:
        if (in[id]) {
          model.erase({live[id].key, live[id].seq, id});
          live[id].key = key;
          live[id].seq = seq++;
          size_t at = heap.positions().of[id];
          heap.at(at) = live[id];
          heap.update(at);
          model.insert({key, live[id].seq, id});
        }
        break;
      case 3:
        if (!model.empty()) {
          Item out = heap.pop();
          uint32_t want = std::get<2>(*model.begin());
          if (out.id != want) failures++;
          heap.positions().of[out.id] = kNowhere;
          model.erase(model.begin());
          in[want] = false;
        }
        break;
    }
    if (heap.size() != model.size()) failures++;
    if (!model.empty() && heap.top().id != std::get<2>(*model.begin())) failures++;
    if (!consistent(heap)) failures++;
    CHECK_MSG(failures == 0, "diverged from the model at step " << step);
  }
  std::vector<uint32_t> expected;
  for (const auto& entry : model) expected.push_back(std::get<2>(entry));
  CHECK(drain(heap) == expected);
}
