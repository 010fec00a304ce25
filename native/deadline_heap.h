// One deadline per connection slot (idle timeout, grace period, queue timeout,
// accept backoff): a binary min-heap of (deadline, slot) with each slot's heap
// position kept beside it, so set, move and clear are O(log n) and a read that
// only stores a timestamp never touches the heap. Entries are re-keyed lazily
// when they come due (see Loop::on_deadline).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace reactor {

class DeadlineHeap {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;

  // Inserts the slot or moves its deadline.
  void set(uint32_t slot, uint64_t deadline) {
    if (slot >= position_.size()) position_.resize(slot + 1, kAbsent);
    uint32_t at = position_[slot];
    if (at == kAbsent) {
      heap_.push_back({deadline, slot});
      at = static_cast<uint32_t>(heap_.size() - 1);
      position_[slot] = at;
      sift_up(at);
    } else {
      heap_[at].deadline = deadline;
      restore(at);
    }
  }

  void clear(uint32_t slot) {
    if (slot >= position_.size() || position_[slot] == kAbsent) return;
    uint32_t at = position_[slot];
    position_[slot] = kAbsent;
    Entry last = heap_.back();
    heap_.pop_back();
    if (at == heap_.size()) return;
    place(at, last);
    restore(at);
  }

  bool contains(uint32_t slot) const {
    return slot < position_.size() && position_[slot] != kAbsent;
  }
  uint64_t next_deadline() const { return heap_.empty() ? kNever : heap_[0].deadline; }
  uint32_t next_slot() const { return heap_[0].slot; }
  size_t size() const { return heap_.size(); }

 private:
  static constexpr uint32_t kAbsent = UINT32_MAX;
  struct Entry {
    uint64_t deadline;
    uint32_t slot;
  };

  void place(uint32_t at, const Entry& entry) {
    heap_[at] = entry;
    position_[entry.slot] = at;
  }

  void sift_up(uint32_t at) {
    Entry entry = heap_[at];
    while (at > 0) {
      uint32_t parent = (at - 1) / 2;
      if (heap_[parent].deadline <= entry.deadline) break;
      place(at, heap_[parent]);
      at = parent;
    }
    place(at, entry);
  }

  void sift_down(uint32_t at) {
    Entry entry = heap_[at];
    size_t n = heap_.size();
    for (;;) {
      size_t child = 2 * static_cast<size_t>(at) + 1;
      if (child >= n) break;
      if (child + 1 < n && heap_[child + 1].deadline < heap_[child].deadline) child++;
      if (heap_[child].deadline >= entry.deadline) break;
      place(at, heap_[child]);
      at = static_cast<uint32_t>(child);
    }
    place(at, entry);
  }

  void restore(uint32_t at) {
    if (at > 0 && heap_[at].deadline < heap_[(at - 1) / 2].deadline) {
      sift_up(at);
    } else {
      sift_down(at);
    }
  }

  std::vector<Entry> heap_;
  std::vector<uint32_t> position_;  // by slot; kAbsent when the slot has no deadline
};

}  // namespace reactor
