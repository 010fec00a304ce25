// One deadline per connection slot (idle timeout, grace period, queue timeout,
// accept backoff): a min-heap of (deadline, slot) with each slot's heap
// position kept beside it, so set, move and clear are O(log n) and a read that
// only stores a timestamp never touches the heap. Entries are re-keyed lazily
// when they come due (see Loop::on_deadline).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "indexed_heap.h"

namespace reactor {

class DeadlineHeap {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;

  // Inserts the slot or moves its deadline.
  void set(uint32_t slot, uint64_t deadline) {
    std::vector<uint32_t>& position = heap_.positions().by_slot;
    if (slot >= position.size()) position.resize(slot + 1, kAbsent);
    uint32_t at = position[slot];
    if (at == kAbsent) {
      heap_.push({deadline, slot});
    } else {
      heap_.at(at).deadline = deadline;
      heap_.update(at);
    }
  }

  void clear(uint32_t slot) {
    if (!contains(slot)) return;
    std::vector<uint32_t>& position = heap_.positions().by_slot;
    heap_.remove_at(position[slot]);
    position[slot] = kAbsent;
  }

  bool contains(uint32_t slot) const {
    const std::vector<uint32_t>& position = heap_.positions().by_slot;
    return slot < position.size() && position[slot] != kAbsent;
  }
  uint64_t next_deadline() const { return heap_.empty() ? kNever : heap_.top().deadline; }
  uint32_t next_slot() const { return heap_.top().slot; }
  size_t size() const { return heap_.size(); }

 private:
  static constexpr uint32_t kAbsent = UINT32_MAX;
  struct Entry {
    uint64_t deadline;
    uint32_t slot;
    bool before(const Entry& other) const { return deadline < other.deadline; }
  };
  struct SlotPositions {
    std::vector<uint32_t> by_slot;  // kAbsent when the slot has no deadline
    void placed(const Entry& entry, size_t index) {
      by_slot[entry.slot] = static_cast<uint32_t>(index);
    }
  };

  IndexedHeap<Entry, SlotPositions> heap_;
};

}  // namespace reactor
