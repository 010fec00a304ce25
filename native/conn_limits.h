// A connection's write limits and idle grace period, shared: each connection
// holds one pointer to them instead of 16 bytes of its own. Every connection
// of a listener points at the listener's record; a connection gets a record
// of its own only when it is given other values. The defaults need no record.
// Single-threaded (the loop's thread), so the count is a plain integer.
#pragma once

#include <cstdint>
#include <new>

namespace reactor {

struct ConnLimits {
  uint32_t grace_ms = 15000;
  uint32_t high_water = 64 * 1024;
  uint32_t low_water = 16 * 1024;
  uint32_t max_write = 16 * 1024 * 1024;

  bool operator==(const ConnLimits& o) const {
    return grace_ms == o.grace_ms && high_water == o.high_water && low_water == o.low_water &&
           max_write == o.max_write;
  }
};

class SharedLimits {
 public:
  SharedLimits() = default;
  SharedLimits(const SharedLimits& other) : record_(other.record_) {
    if (record_) record_->refs++;
  }
  SharedLimits(SharedLimits&& other) noexcept : record_(other.record_) { other.record_ = nullptr; }
  SharedLimits& operator=(SharedLimits other) noexcept {
    Record* mine = record_;
    record_ = other.record_;
    other.record_ = mine;
    return *this;
  }
  ~SharedLimits() {
    if (record_ && --record_->refs == 0) delete record_;
  }

  const ConnLimits& get() const { return record_ ? record_->limits : kDefaults; }

  // Points at `limits`, allocating only when they are not the defaults.
  // False (and unchanged) when memory runs out.
  bool assign(const ConnLimits& limits) {
    if (limits == get()) return true;
    SharedLimits fresh;
    if (!(limits == kDefaults)) {
      fresh.record_ = new (std::nothrow) Record{limits, 1};
      if (!fresh.record_) return false;
    }
    *this = std::move(fresh);
    return true;
  }

 private:
  struct Record {
    ConnLimits limits;
    uint32_t refs;
  };
  static constexpr ConnLimits kDefaults{};
  Record* record_ = nullptr;
};

}  // namespace reactor
