// What the poll and select backends share: the watched fds as one dense array
// of the backend's own records (pollfd for poll; fd and interest for select),
// which its syscall's arguments are built from, the token of each beside it
// and an index from fd to place (a removal moves the last record into the
// gap); and the ReadinessThread that waits on a snapshot of the records.
//
// Record needs an `int fd` member. Every call is the loop thread's; the
// helper thread only copies the records (snapshot) and runs `block` on the
// copy.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "poller.h"
#include "poller_thread.h"

namespace reactor {

template <typename Record>
class WatchedSet {
 public:
  // The backend's wait on the helper thread: the records plus wake_fd, as
  // ReadinessThread's `block` (> 0 when a record is ready, 0 when only woken).
  using Block = int (*)(std::vector<Record>& snapshot, int wake_fd);

  explicit WatchedSet(Block block)
      : thread_([this] { snapshot_ = records_; },
                [this, block](int wake_fd) { return block(snapshot_, wake_fd); }) {}

  bool start(std::string* error) { return thread_.start(error); }
  int notify_fd() const { return thread_.notify_fd(); }
  int highest_own_fd() const { return thread_.highest_fd(); }

  // 0 or -EEXIST.
  int add(const Record& record, uint64_t token) {
    std::lock_guard<std::mutex> lock(thread_.mutex());
    if (!index_.emplace(record.fd, records_.size()).second) return -EEXIST;
    records_.push_back(record);
    tokens_.push_back(token);
    thread_.changed();
    return 0;
  }

  // Replaces the record of record.fd: 0 or -ENOENT.
  int modify(const Record& record, uint64_t token) {
    std::lock_guard<std::mutex> lock(thread_.mutex());
    auto it = index_.find(record.fd);
    if (it == index_.end()) return -ENOENT;
    records_[it->second] = record;
    tokens_[it->second] = token;
    thread_.changed();
    return 0;
  }

  // 0 or -ENOENT.
  int detach(int fd) {
    std::lock_guard<std::mutex> lock(thread_.mutex());
    auto it = index_.find(fd);
    if (it == index_.end()) return -ENOENT;
    size_t at = it->second;
    index_.erase(it);
    if (at != records_.size() - 1) {
      records_[at] = records_.back();
      tokens_[at] = tokens_.back();
      index_[records_[at].fd] = at;
    }
    records_.pop_back();
    tokens_.pop_back();
    thread_.changed();
    return 0;
  }

  // Before fd closes: the helper must not be waiting on it then (see
  // poller_thread.h).
  int remove(int fd) {
    int rc = detach(fd);
    thread_.quiesce();
    return rc;
  }

  // The loop is about to block: the helper watches (again).
  void resume() { thread_.resume(); }

  // The loop collects events itself: the helper stops watching. The records
  // are the loop's while the returned lock is held.
  [[nodiscard]] std::unique_lock<std::mutex> pause() {
    thread_.pause();
    return std::unique_lock<std::mutex>(thread_.mutex());
  }

  std::vector<Record>& records() { return records_; }

  Record* find(int fd) {
    auto it = index_.find(fd);
    return it == index_.end() ? nullptr : &records_[it->second];
  }

  // Fills `out` with up to `max` events for the records `ready` reports on
  // (`ready(record, event)` sets the event's conditions, false when there is
  // none), starting after the last one reported so that a full batch never
  // starves the rest.
  template <typename Ready>
  int collect(PollEvent* out, int max, Ready ready) {
    size_t size = records_.size();
    if (size == 0) return 0;
    int n = 0;
    size_t start = next_ % size;
    for (size_t i = 0; i < size && n < max; i++) {
      size_t at = (start + i) % size;
      if (!ready(records_[at], &out[n])) continue;
      out[n++].token = tokens_[at];
      next_ = (at + 1) % size;
    }
    return n;
  }

 private:
  std::vector<Record> records_;            // dense; a record's place found through index_
  std::vector<uint64_t> tokens_;           // beside records_
  std::unordered_map<int, size_t> index_;  // fd -> place in records_
  size_t next_ = 0;                        // where collect() starts
  std::vector<Record> snapshot_;           // the helper thread's copy
  ReadinessThread thread_;                 // last: stopped before the sets above go
};

}  // namespace reactor
