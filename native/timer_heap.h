// General timers: a binary min-heap keyed by (deadline, sequence) with each
// timer's heap position kept in a slot table, so start, cancel and reset are
// O(log n) and equal deadlines fire in the order they were set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "slot_table.h"

namespace reactor {

class TimerHeap {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;

  // Returns false when no slot is left.
  bool start(uint64_t deadline, Id* id);
  bool cancel(Id id);
  bool reset(Id id, uint64_t deadline);
  bool active(Id id) { return positions_.get(id) != nullptr; }
  uint64_t next_deadline() const { return heap_.empty() ? kNever : heap_[0].deadline; }
  // Whether a timer should keep the process alive (every timer does at start).
  bool set_keeps_alive(Id id, bool keeps_alive);
  size_t keeping_alive() const { return keeping_alive_; }
  // Removes and returns the earliest timer due at `now`, if any.
  bool pop_expired(uint64_t now, Id* id);
  size_t size() const { return heap_.size(); }

 private:
  struct Node {
    uint64_t deadline;
    uint64_t seq;
    Id id;
    bool keeps_alive;
  };
  static bool before(const Node& a, const Node& b) {
    return a.deadline != b.deadline ? a.deadline < b.deadline : a.seq < b.seq;
  }
  void place(size_t index, const Node& node);
  void sift_up(size_t index);
  void sift_down(size_t index);
  void restore(size_t index);    // re-establish order after heap_[index] changed
  void remove_at(size_t index);  // also forgets the timer's identity

  std::vector<Node> heap_;
  SlotTable<size_t> positions_;  // timer id -> index in heap_
  uint64_t next_seq_ = 0;
  size_t keeping_alive_ = 0;
};

}  // namespace reactor
