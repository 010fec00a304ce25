// The writes of one LoopCore::write_batch() call that go out at once,
// gathered by connection: one BatchedSend per connection with its chunks in
// the order they were written. Two sends to one connection in one submission
// could land out of order (a short first one followed by a complete second
// would corrupt the stream); one send with several chunks cannot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "platform.h"
#include "poller.h"
#include "slot_table.h"

namespace reactor {

class WriteBatch {
 public:
  // The send of the connection in `slot` so far, or -1.
  int send_of(uint32_t slot) const {
    return slot < send_by_slot_.size() ? send_by_slot_[slot] : -1;
  }

  int add_send(Id id, int fd) {
    if (send_by_slot_.size() <= id.slot) send_by_slot_.resize(id.slot + 1, -1);
    int send = static_cast<int>(sends_.size());
    send_by_slot_[id.slot] = send;
    sends_.push_back(BatchedSend{fd, nullptr, 0, 0});
    ids_.push_back(id);
    return send;
  }

  // Write number `write` joins `send`; false when the send holds as many
  // chunks as one sendmsg takes.
  bool add(int send, int write, const iovec& chunk) {
    BatchedSend& s = sends_[static_cast<size_t>(send)];
    if (s.count == kMaxSendChunks) return false;
    s.count++;
    members_.push_back(Member{send, write, chunk});
    return true;
  }

  // Lays each send's chunks out together (in write order) and returns the
  // sends, valid until clear().
  BatchedSend* gather() {
    chunks_.resize(members_.size());
    writes_.resize(members_.size());
    size_t at = 0;
    for (BatchedSend& s : sends_) {
      s.chunks = chunks_.data() + at;
      at += static_cast<size_t>(s.count);
      s.count = 0;
    }
    for (const Member& m : members_) {
      BatchedSend& s = sends_[static_cast<size_t>(m.send)];
      size_t place = static_cast<size_t>(s.chunks - chunks_.data()) + static_cast<size_t>(s.count);
      chunks_[place] = m.chunk;
      writes_[place] = m.write;
      s.count++;
    }
    return sends_.data();
  }

  int sends() const { return static_cast<int>(sends_.size()); }
  Id id(int send) const { return ids_[static_cast<size_t>(send)]; }
  const BatchedSend& send(int send) const { return sends_[static_cast<size_t>(send)]; }
  // After gather(): the number of the write behind each chunk of a send.
  const int* writes(int send) const {
    return writes_.data() + (sends_[static_cast<size_t>(send)].chunks - chunks_.data());
  }

  // Keeps the memory for the next batch.
  void clear() {
    for (Id id : ids_) send_by_slot_[id.slot] = -1;
    sends_.clear();
    ids_.clear();
    members_.clear();
  }

 private:
  struct Member {
    int send;
    int write;
    iovec chunk;
  };
  std::vector<int> send_by_slot_;  // -1 where the connection has no send in this batch
  std::vector<BatchedSend> sends_;
  std::vector<Id> ids_;  // by send
  std::vector<Member> members_;
  std::vector<iovec> chunks_;  // by send, then write order
  std::vector<int> writes_;    // parallel to chunks_
};

}  // namespace reactor
