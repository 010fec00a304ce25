// Input a completion backend took from a socket after JavaScript paused its
// connection (a multishot receive posts until its cancel lands, and a pause
// in the middle of a batch leaves the batch's later receives): bytes in
// order, then an end of stream or an error, given back when it resumes. The
// loop's completion path (completions.cc) is the only user.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "slot_table.h"

namespace reactor {

class HeldInput {
 public:
  struct Input {
    std::string bytes;
    bool ended = false;
    int error = 0;
  };

  bool has(uint32_t slot) const { return !held_.empty() && held_.count(slot) != 0; }
  void append(uint32_t slot, const uint8_t* data, size_t length) {
    held_[slot].bytes.append(reinterpret_cast<const char*>(data), length);
  }
  // error 0: the end of the stream. The first error is the one reported.
  void end(uint32_t slot, int error) {
    Input& input = held_[slot];
    if (!error) {
      input.ended = true;
    } else if (!input.error) {
      input.error = error;
    }
  }
  bool take(uint32_t slot, Input* out) {
    auto it = held_.find(slot);
    if (it == held_.end()) return false;
    *out = std::move(it->second);
    held_.erase(it);
    return true;
  }
  void forget(uint32_t slot) {
    if (!held_.empty()) held_.erase(slot);
  }

  // Connections resumed (or lingering) with input held, served at the next
  // settle.
  void resume(Id id) { resumed_.push_back(id); }
  bool resumed() const { return !resumed_.empty(); }
  std::vector<Id> take_resumed() {
    std::vector<Id> ids;
    ids.swap(resumed_);
    return ids;
  }

 private:
  std::unordered_map<uint32_t, Input> held_;
  std::vector<Id> resumed_;
};

}  // namespace reactor
