// Grows the process's descriptor table ahead of need, off the loop thread.
// Linux grows the table (doubling) when a descriptor beyond it is allocated,
// and in a multi-threaded process (Node always is) it first waits for an RCU
// grace period (synchronize_rcu in expand_fdtable): 8-30 ms measured, in which
// the loop thread sits in accept() while a connection storm fills the listen
// backlog, so the kernel drops SYNs and those clients wait a second for a
// retransmit. Here a helper thread takes that wait instead: when the loop
// takes a descriptor at a quarter of what was reserved so far, the helper
// reserves four times as much by duplicating a descriptor of the loop's to
// the last number of it and closing the copy (a listener asks for 4096 at
// once). Meanwhile the loop keeps accepting: the kernel waits for a resize
// only for a number beyond the current table. It reserves no more than the
// descriptor limit allows, and nothing where the table already covers it.
#pragma once

#include <climits>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace reactor {

class FdTableReserve {
 public:
  // `source` is duplicated to make the kernel grow the table; it must stay
  // open for the life of the reserve.
  explicit FdTableReserve(int source) : source_(source) {}
  ~FdTableReserve();  // waits for a reservation under way
  FdTableReserve(const FdTableReserve&) = delete;
  FdTableReserve& operator=(const FdTableReserve&) = delete;

  // Called with each descriptor the loop takes: one comparison unless it is
  // time to reserve more.
  void note(int fd) {
    if (fd >= trigger_) reserve_for(fd);
  }

  // A listener was added: a storm may come, faster than note() sees it
  // (io_uring accepts in the kernel, ahead of the completions the loop
  // reads), and the first grace period may outlast a quarter of a small
  // table, so a larger first step is taken at once.
  void expect_connections() {
    if (kNeeded && reach_ < kListenerReach) ask(kListenerReach);
  }

 private:
  void reserve_for(int fd);
  void ask(int64_t reach);
  void run();

#ifdef __linux__
  static constexpr bool kNeeded = true;
#else
  static constexpr bool kNeeded = false;  // other kernels grow tables without a grace period
#endif
  static constexpr int64_t kFirstReach = 256;
  static constexpr int64_t kKernelFirstTable = 64;  // what a process starts with
  static constexpr int64_t kListenerReach = 4096;   // 32 KiB of kernel memory
  // Node's own descriptors stay below the first trigger: a process that never
  // holds more (and listens on nothing) never starts the helper.
  int trigger_ = kNeeded ? kFirstReach / 4 : INT_MAX;
  int64_t reach_ = kFirstReach;
  int source_;
  std::mutex mutex_;
  std::condition_variable wake_;
  int64_t wanted_ = 0;
  int64_t reserved_ = 0;
  bool stopping_ = false;
  std::thread helper_;
};

}  // namespace reactor
