// The datagrams a UDP socket has not handed to the kernel yet, in order:
// those sent while JavaScript handles a batch (flushed with one sendmmsg once
// the batch returns) and those the kernel had no room for (flushed when the
// socket turns writable). Bounded, as datagram.h recommends: UDP promises no
// delivery, and a queue that grew with a sender faster than the network
// would only add latency and memory. What does not fit is refused (fits()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "datagram.h"
#include "sockets.h"

namespace reactor {

class DatagramQueue {
 public:
  static constexpr size_t kMaxDatagrams = 64;
  static constexpr size_t kMaxBytes = 256 * 1024;

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  bool fits(size_t length) const {
    return entries_.size() < kMaxDatagrams && bytes_.size() + length <= kMaxBytes;
  }

  // Copies the datagram; `to` null: the connected peer.
  void push(const void* data, size_t length, const Endpoint* to) {
    Entry entry{bytes_.size(), length, to != nullptr, {}};
    if (to) entry.to = *to;
    const auto* first = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), first, first + length);
    entries_.push_back(entry);
  }

  // The queued datagrams for send_datagrams(); valid until the queue changes.
  const OutgoingDatagram* outgoing() {
    list_.resize(entries_.size());
    for (size_t i = 0; i < entries_.size(); i++) {
      const Entry& entry = entries_[i];
      list_[i] = {bytes_.data() + entry.offset, entry.length,
                  entry.addressed ? &entry.to : nullptr};
    }
    return list_.data();
  }

  // Bytes of the first n datagrams.
  size_t bytes_of(size_t n) const {
    return n == entries_.size() ? bytes_.size() : entries_[n].offset;
  }

  // Forgets the first n datagrams (sent, or failed and reported).
  void pop_front(size_t n) {
    if (n == 0) return;
    if (n >= entries_.size()) {
      clear();
      return;
    }
    size_t cut = entries_[n].offset;
    bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(cut));
    entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(n));
    for (Entry& entry : entries_) entry.offset -= cut;
  }

  // Keeps the memory of a typical batch; a socket that once queued a burst
  // of large datagrams gives it back.
  void clear() {
    entries_.clear();
    bytes_.clear();
    if (bytes_.capacity() > kKeptBytes) std::vector<uint8_t>().swap(bytes_);
  }

 private:
  static constexpr size_t kKeptBytes = 16 * 1024;
  struct Entry {
    size_t offset;  // in bytes_
    size_t length;
    bool addressed;
    Endpoint to;
  };
  std::vector<Entry> entries_;
  std::vector<uint8_t> bytes_;
  std::vector<OutgoingDatagram> list_;
};

}  // namespace reactor
