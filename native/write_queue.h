// The unsent tail of a connection's writes: one contiguous buffer consumed
// from the front, so a flush is a single send of everything queued.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace reactor {

class WriteQueue {
 public:
  bool empty() const { return head_ == bytes_.size(); }
  size_t size() const { return bytes_.size() - head_; }
  const uint8_t* data() const { return bytes_.data() + head_; }

  // Appends the chunks, skipping the first `skip` bytes (already sent).
  void append(const iovec* chunks, int count, size_t skip) {
    for (int i = 0; i < count; i++) {
      const auto* base = static_cast<const uint8_t*>(chunks[i].iov_base);
      size_t len = chunks[i].iov_len;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      bytes_.insert(bytes_.end(), base + skip, base + len);
      skip = 0;
    }
  }

  void consume(size_t n) {
    head_ += n;
    if (head_ == bytes_.size()) {
      clear();
    } else if (head_ >= kCompactAfter && head_ * 2 >= bytes_.size()) {
      // Drop the sent prefix so a queue that never fully drains stays bounded.
      bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

  // Frees the memory: an idle connection holds no buffer.
  void clear() {
    std::vector<uint8_t>().swap(bytes_);
    head_ = 0;
  }

 private:
  static constexpr size_t kCompactAfter = 64 * 1024;
  std::vector<uint8_t> bytes_;
  size_t head_ = 0;
};

}  // namespace reactor
