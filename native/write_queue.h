// The unsent tail of a connection's writes: one contiguous buffer consumed
// from the front, so a flush is a single send of everything queued. An empty
// queue holds no memory beyond one null pointer, which keeps idle connections
// small.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "platform.h"

namespace reactor {

class WriteQueue {
 public:
  bool empty() const { return !buffer_; }
  size_t size() const { return buffer_ ? buffer_->bytes.size() - buffer_->head : 0; }
  const uint8_t* data() const { return buffer_->bytes.data() + buffer_->head; }

  // Appends the chunks, skipping the first `skip` bytes (already sent).
  void append(const iovec* chunks, int count, size_t skip) {
    for (int i = 0; i < count; i++) {
      const auto* base = static_cast<const uint8_t*>(chunks[i].iov_base);
      size_t len = chunks[i].iov_len;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      if (!buffer_) buffer_ = std::make_unique<Buffer>();
      buffer_->bytes.insert(buffer_->bytes.end(), base + skip, base + len);
      skip = 0;
    }
  }

  void consume(size_t n) {
    Buffer& b = *buffer_;
    b.head += n;
    if (b.head == b.bytes.size()) {
      clear();
    } else if (b.head >= kCompactAfter && b.head * 2 >= b.bytes.size()) {
      // Drop the sent prefix so a queue that never fully drains stays bounded.
      b.bytes.erase(b.bytes.begin(), b.bytes.begin() + static_cast<std::ptrdiff_t>(b.head));
      b.head = 0;
    }
  }

  // Frees the memory: an idle connection holds no buffer.
  void clear() { buffer_.reset(); }

 private:
  static constexpr size_t kCompactAfter = 64 * 1024;
  struct Buffer {
    std::vector<uint8_t> bytes;
    size_t head = 0;
  };
  std::unique_ptr<Buffer> buffer_;
};

}  // namespace reactor
