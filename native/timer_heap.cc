#include "timer_heap.h"

namespace reactor {

bool TimerHeap::start(uint64_t deadline, Id* id) {
  if (!positions_.allocate(id)) return false;
  heap_.push_back({deadline, next_seq_++, *id, true});
  keeping_alive_++;
  *positions_.get(*id) = heap_.size() - 1;
  sift_up(heap_.size() - 1);
  return true;
}

bool TimerHeap::cancel(Id id) {
  size_t* pos = positions_.get(id);
  if (!pos) return false;
  remove_at(*pos);
  return true;
}

bool TimerHeap::set_keeps_alive(Id id, bool keeps_alive) {
  size_t* pos = positions_.get(id);
  if (!pos) return false;
  Node& node = heap_[*pos];
  if (node.keeps_alive != keeps_alive) {
    node.keeps_alive = keeps_alive;
    keeps_alive ? keeping_alive_++ : keeping_alive_--;
  }
  return true;
}

bool TimerHeap::reset(Id id, uint64_t deadline) {
  size_t* pos = positions_.get(id);
  if (!pos) return false;
  size_t index = *pos;
  heap_[index].deadline = deadline;
  heap_[index].seq = next_seq_++;
  restore(index);
  return true;
}

bool TimerHeap::pop_expired(uint64_t now, Id* id) {
  if (heap_.empty() || heap_[0].deadline > now) return false;
  *id = heap_[0].id;
  remove_at(0);
  return true;
}

void TimerHeap::place(size_t index, const Node& node) {
  heap_[index] = node;
  *positions_.get(node.id) = index;
}

void TimerHeap::sift_up(size_t index) {
  Node node = heap_[index];
  while (index > 0) {
    size_t parent = (index - 1) / 2;
    if (!before(node, heap_[parent])) break;
    place(index, heap_[parent]);
    index = parent;
  }
  place(index, node);
}

void TimerHeap::sift_down(size_t index) {
  Node node = heap_[index];
  size_t n = heap_.size();
  for (;;) {
    size_t child = 2 * index + 1;
    if (child >= n) break;
    if (child + 1 < n && before(heap_[child + 1], heap_[child])) child++;
    if (!before(heap_[child], node)) break;
    place(index, heap_[child]);
    index = child;
  }
  place(index, node);
}

void TimerHeap::restore(size_t index) {
  if (index > 0 && before(heap_[index], heap_[(index - 1) / 2])) {
    sift_up(index);
  } else {
    sift_down(index);
  }
}

void TimerHeap::remove_at(size_t index) {
  if (heap_[index].keeps_alive) keeping_alive_--;
  positions_.release(heap_[index].id);
  Node last = heap_.back();
  heap_.pop_back();
  if (index == heap_.size()) return;
  place(index, last);
  restore(index);
}

}  // namespace reactor
