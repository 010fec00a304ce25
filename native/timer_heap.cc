#include "timer_heap.h"

namespace reactor {

bool TimerHeap::start(uint64_t deadline, Id* id) {
  if (!heap_.positions().table.allocate(id)) return false;
  heap_.push({deadline, next_seq_++, *id, true});
  keeping_alive_++;
  return true;
}

bool TimerHeap::cancel(Id id) {
  size_t* pos = position(id);
  if (!pos) return false;
  forget(heap_.remove_at(*pos));
  return true;
}

bool TimerHeap::set_keeps_alive(Id id, bool keeps_alive) {
  size_t* pos = position(id);
  if (!pos) return false;
  Node& node = heap_.at(*pos);
  if (node.keeps_alive != keeps_alive) {
    node.keeps_alive = keeps_alive;
    keeps_alive ? keeping_alive_++ : keeping_alive_--;
  }
  return true;
}

bool TimerHeap::reset(Id id, uint64_t deadline) {
  size_t* pos = position(id);
  if (!pos) return false;
  size_t index = *pos;
  Node& node = heap_.at(index);
  node.deadline = deadline;
  node.seq = next_seq_++;
  heap_.update(index);
  return true;
}

bool TimerHeap::pop_expired(uint64_t now, Id* id) {
  if (heap_.empty() || heap_.top().deadline > now) return false;
  Node fired = heap_.pop();
  forget(fired);
  *id = fired.id;
  return true;
}

void TimerHeap::forget(const Node& node) {
  if (node.keeps_alive) keeping_alive_--;
  heap_.positions().table.release(node.id);
}

}  // namespace reactor
