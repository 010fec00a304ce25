// Idle deadlines as one FIFO list per idle timeout. A connection's idle
// deadline is its last activity plus its timeout; activity restarts the clock
// at a time no earlier than any other clock's start, so appending at the back
// of the list of that timeout keeps the list ordered by deadline and its head
// is always the next one due. Moving to the back, appending and removing are
// O(1) and cost each connection 8 bytes of links (kept in the connection's own
// record: intrusive) instead of a heap entry and a position.
//
// Every connection of one listener has the same timeout, so a few lists cover
// a server; past kMaxLists distinct timeouts push_back() refuses and the
// caller keeps that deadline in a heap.
//
// Nodes is the owner's view of its records by slot:
//   IdleLinks& links(uint32_t slot)       the slot's links
//   uint64_t last_active(uint32_t slot)   when its idle clock started
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace reactor {

// A node's neighbours: slots, or the list itself at either end.
struct IdleLinks {
  static constexpr uint32_t kUnlinked = UINT32_MAX;
  uint32_t prev = kUnlinked;
  uint32_t next = kUnlinked;
  bool linked() const { return next != kUnlinked; }
};

template <typename Nodes>
class IdleLists {
 public:
  static constexpr size_t kMaxLists = 8;
  static constexpr uint64_t kNever = UINT64_MAX;

  explicit IdleLists(Nodes nodes) : nodes_(nodes) {
    for (uint32_t i = 0; i < kMaxLists; i++) {
      lists_[i].ends.prev = lists_[i].ends.next = end_of(i);
    }
  }

  // Appends an unlinked slot to the list of timeout `ms` (0 < ms). False
  // when every list is taken by another timeout: the slot stays unlinked.
  bool push_back(uint32_t slot, uint32_t ms) {
    uint32_t list = list_for(ms);
    if (list == kNoList) return false;
    lists_[list].ms = ms;
    uint32_t end = end_of(list);
    uint32_t tail = lists_[list].ends.prev;
    IdleLinks& node = nodes_.links(slot);
    node.prev = tail;
    node.next = end;
    links_at(tail).next = slot;
    lists_[list].ends.prev = slot;
    return true;
  }

  // The slot's clock restarted: it goes to the back of its list (that of
  // timeout `ms`). Nothing if it is not linked.
  void move_to_back(uint32_t slot, uint32_t ms) {
    IdleLinks& node = nodes_.links(slot);
    if (!node.linked() || is_end(node.next)) return;  // unlinked, or already last
    remove(slot);
    push_back(slot, ms);
  }

  // Nothing if the slot is not linked.
  void remove(uint32_t slot) {
    IdleLinks& node = nodes_.links(slot);
    if (!node.linked()) return;
    links_at(node.prev).next = node.next;
    links_at(node.next).prev = node.prev;
    node = IdleLinks{};
  }

  // The earliest deadline of all lists (kNever when all are empty).
  uint64_t next_deadline() const {
    uint64_t earliest = kNever;
    for (const List& list : lists_) {
      if (is_end(list.ends.next)) continue;
      uint64_t due = nodes_.last_active(list.ends.next) + list.ms;
      if (due < earliest) earliest = due;
    }
    return earliest;
  }

  // The slot whose deadline next_deadline() is; call only when one exists.
  uint32_t next_slot() const {
    uint64_t earliest = kNever;
    uint32_t slot = IdleLinks::kUnlinked;
    for (const List& list : lists_) {
      if (is_end(list.ends.next)) continue;
      uint64_t due = nodes_.last_active(list.ends.next) + list.ms;
      if (due < earliest) {
        earliest = due;
        slot = list.ends.next;
      }
    }
    return slot;
  }

 private:
  // A list's own end is named in links by kEnd | its index; slots stay below
  // 2^24 (slot_table.h), so the two never meet.
  static constexpr uint32_t kEnd = 1u << 31;
  static constexpr uint32_t kNoList = UINT32_MAX;
  struct List {
    uint32_t ms = 0;
    IdleLinks ends;  // next: the head, prev: the tail (the list's own end when empty)
  };

  static uint32_t end_of(uint32_t list) { return kEnd | list; }
  static bool is_end(uint32_t ref) { return (ref & kEnd) != 0 && ref != IdleLinks::kUnlinked; }
  bool empty(uint32_t list) const { return is_end(lists_[list].ends.next); }

  IdleLinks& links_at(uint32_t ref) {
    return is_end(ref) ? lists_[ref & ~kEnd].ends : nodes_.links(ref);
  }

  // The list of timeout ms, else an empty one to take, else kNoList.
  uint32_t list_for(uint32_t ms) const {
    uint32_t free = kNoList;
    for (uint32_t i = 0; i < kMaxLists; i++) {
      if (empty(i)) {
        if (free == kNoList) free = i;
      } else if (lists_[i].ms == ms) {
        return i;
      }
    }
    return free;
  }

  Nodes nodes_;
  std::array<List, kMaxLists> lists_;
};

}  // namespace reactor
