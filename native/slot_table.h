// Slot table with generations: identities are (slot, generation) pairs, so a
// stale identity held by JavaScript never reaches whatever reuses its slot.
// Storage is a deque, so a pointer to an entry stays valid while others are
// added; freed slots are reused last-in first-out. A slot released with
// `deferred` is not reused until reuse_deferred(): JavaScript indexes its
// objects by slot, so a slot must not be taken again while a record about
// its last occupant is still on its way there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace reactor {

// Identities cross into JavaScript as one number: generation * 2^24 + slot,
// which stays below 2^53 and is therefore exact in a double.
constexpr uint32_t kSlotBits = 24;
constexpr uint32_t kMaxSlots = 1u << kSlotBits;
constexpr uint32_t kGenerationMask = (1u << 29) - 1;

struct Id {
  uint32_t slot;
  uint32_t gen;
  uint64_t packed() const { return (static_cast<uint64_t>(gen) << kSlotBits) | slot; }
  bool operator==(const Id& other) const { return slot == other.slot && gen == other.gen; }
  static Id unpack(uint64_t v) {
    return {static_cast<uint32_t>(v & (kMaxSlots - 1)),
            static_cast<uint32_t>((v >> kSlotBits) & kGenerationMask)};
  }
};

template <typename T>
class SlotTable {
 public:
  // Returns false when the table is full.
  bool allocate(Id* id) {
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      if (entries_.size() >= kMaxSlots) return false;
      slot = static_cast<uint32_t>(entries_.size());
      entries_.emplace_back();
    }
    Entry& e = entries_[slot];
    e.used = true;
    e.value = T{};
    *id = {slot, e.gen};
    used_++;
    return true;
  }

  void release(Id id, bool deferred = false) {
    Entry* e = entry(id);
    if (!e) return;
    e->used = false;
    e->gen = (e->gen + 1) & kGenerationMask;
    e->value = T{};
    (deferred ? deferred_ : free_).push_back(id.slot);
    used_--;
  }

  size_t deferred() const { return deferred_.size(); }
  // The first `count` deferred slots (in release order) may be reused now.
  void reuse_deferred(size_t count) {
    free_.insert(free_.end(), deferred_.begin(), deferred_.begin() + count);
    deferred_.erase(deferred_.begin(), deferred_.begin() + count);
  }

  T* get(Id id) {
    Entry* e = entry(id);
    return e ? &e->value : nullptr;
  }

  // The entry at a slot, live or not: for structures of the owner's that are
  // keyed by slot and know which slots they hold.
  T& at(uint32_t slot) { return entries_[slot].value; }
  const T& at(uint32_t slot) const { return entries_[slot].value; }

  // The live identity at a slot, if any (for walking the table).
  bool live_at(uint32_t slot, Id* id) const {
    if (slot >= entries_.size() || !entries_[slot].used) return false;
    *id = {slot, entries_[slot].gen};
    return true;
  }

  size_t used() const { return used_; }
  size_t capacity() const { return entries_.size(); }
  // What each slot costs in the table.
  static constexpr size_t entry_size() { return sizeof(Entry); }

 private:
  struct Entry {
    T value{};
    uint32_t gen = 0;
    bool used = false;
  };

  Entry* entry(Id id) {
    if (id.slot >= entries_.size()) return nullptr;
    Entry& e = entries_[id.slot];
    return (e.used && e.gen == id.gen) ? &e : nullptr;
  }

  std::deque<Entry> entries_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> deferred_;
  size_t used_ = 0;
};

}  // namespace reactor
