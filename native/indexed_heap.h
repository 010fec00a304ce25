// A binary min-heap whose entries always know their index, so an entry found
// through its owner's key (a timer id, a connection slot) can be moved or
// removed in O(log n). Behind TimerHeap and DeadlineHeap.
//
// Entry orders itself: `a.before(b)` when a must come out first (a strict
// order; make it total, e.g. with a sequence number, where equal keys must
// keep their order). Positions is told every index an entry lands at,
// `placed(entry, index)`, and belongs to the owner, which looks entries up in
// it and forgets the ones it removes. Everything is inline: no allocation
// beyond the vector's growth, no indirect call.
#pragma once

#include <cstddef>
#include <vector>

namespace reactor {

template <typename Entry, typename Positions>
class IndexedHeap {
 public:
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  const Entry& top() const { return entries_[0]; }
  // May be changed in place; call update(index) if its order changed.
  Entry& at(size_t index) { return entries_[index]; }
  Positions& positions() { return positions_; }
  const Positions& positions() const { return positions_; }

  void push(const Entry& entry) {
    entries_.push_back(entry);
    sift_up(entries_.size() - 1);
  }

  // Re-establishes the order after the entry at `index` changed.
  void update(size_t index) {
    if (index > 0 && entries_[index].before(entries_[parent(index)])) {
      sift_up(index);
    } else {
      sift_down(index);
    }
  }

  // Takes the entry at `index` out and returns it; its position stays in
  // Positions for the owner to forget.
  Entry remove_at(size_t index) {
    Entry removed = entries_[index];
    Entry last = entries_.back();
    entries_.pop_back();
    if (index < entries_.size()) {
      place(index, last);
      update(index);
    }
    return removed;
  }

  Entry pop() { return remove_at(0); }

 private:
  static size_t parent(size_t index) { return (index - 1) / 2; }

  void place(size_t index, const Entry& entry) {
    entries_[index] = entry;
    positions_.placed(entry, index);
  }

  void sift_up(size_t index) {
    Entry entry = entries_[index];
    while (index > 0 && entry.before(entries_[parent(index)])) {
      place(index, entries_[parent(index)]);
      index = parent(index);
    }
    place(index, entry);
  }

  void sift_down(size_t index) {
    Entry entry = entries_[index];
    size_t n = entries_.size();
    for (;;) {
      size_t child = 2 * index + 1;
      if (child >= n) break;
      if (child + 1 < n && entries_[child + 1].before(entries_[child])) child++;
      if (!entries_[child].before(entry)) break;
      place(index, entries_[child]);
      index = child;
    }
    place(index, entry);
  }

  std::vector<Entry> entries_;
  Positions positions_;
};

}  // namespace reactor
