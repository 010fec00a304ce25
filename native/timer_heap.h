// General timers: a min-heap keyed by (deadline, sequence) with each timer's
// heap position kept in a slot table, so start, cancel and reset are
// O(log n) and equal deadlines fire in the order they were set.
#pragma once

#include <cstddef>
#include <cstdint>

#include "indexed_heap.h"
#include "slot_table.h"

namespace reactor {

class TimerHeap {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;

  // Returns false when no slot is left.
  bool start(uint64_t deadline, Id* id);
  bool cancel(Id id);
  bool reset(Id id, uint64_t deadline);
  bool active(Id id) { return position(id) != nullptr; }
  uint64_t next_deadline() const { return heap_.empty() ? kNever : heap_.top().deadline; }
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
    bool before(const Node& other) const {
      return deadline != other.deadline ? deadline < other.deadline : seq < other.seq;
    }
  };
  struct IdPositions {
    SlotTable<size_t> table;  // timer id -> index in the heap
    void placed(const Node& node, size_t index) { *table.get(node.id) = index; }
  };

  size_t* position(Id id) { return heap_.positions().table.get(id); }
  // A timer that left the heap: its identity and its keep-alive go.
  void forget(const Node& node);

  IndexedHeap<Node, IdPositions> heap_;
  uint64_t next_seq_ = 0;
  size_t keeping_alive_ = 0;
};

}  // namespace reactor
