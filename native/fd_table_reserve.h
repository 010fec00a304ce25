// Grows the process's descriptor table ahead of need, off the loop thread.
// Linux grows the table (doubling) when a descriptor beyond it is allocated,
// and in a multi-threaded process (Node always is) it first waits for an RCU
// grace period (synchronize_rcu in expand_fdtable): 8-30 ms measured, in which
// the loop thread sits in accept() while a connection storm fills the listen
// backlog, so the kernel drops SYNs and those clients wait a second for a
// retransmit. Here a helper thread takes that wait instead: when the loop
// takes a descriptor at a quarter of what was reserved so far, the helper
// reserves four times as much by duplicating a descriptor of its own to the
// last number of it and closing the copy. Meanwhile the loop keeps accepting:
// the kernel waits for a resize only for a number beyond the current table.
#pragma once

#include <climits>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace reactor {

class FdTableReserve {
 public:
  FdTableReserve() = default;
  ~FdTableReserve();  // waits for a reservation under way
  FdTableReserve(const FdTableReserve&) = delete;
  FdTableReserve& operator=(const FdTableReserve&) = delete;

  // Called with each descriptor the loop takes: one comparison unless it is
  // time to reserve more.
  void note(int fd) {
    if (fd >= trigger_) grow(fd);
  }

  // Table entries the helper has reserved so far (as asked: fewer where the
  // descriptor limit is lower).
  int64_t reserved();

 private:
  void grow(int fd);
  void run();

#ifdef __linux__
  // Node's own descriptors stay below this: a process that never holds more
  // never starts the helper.
  int trigger_ = 64;
#else
  int trigger_ = INT_MAX;  // other kernels grow their tables without a grace period
#endif
  int64_t reach_ = 256;
  std::mutex mutex_;
  std::condition_variable wake_;
  int64_t wanted_ = 0;
  int64_t reserved_ = 0;
  bool stopping_ = false;
  std::thread helper_;
};

}  // namespace reactor
