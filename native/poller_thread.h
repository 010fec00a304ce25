// A pollable fd for backends whose wait is not one (poll, select): a helper
// thread blocks in the backend's own wait on a snapshot of the watched set and,
// when something is ready, makes a notification pipe readable and stops. Node's
// libuv watches that pipe as it would an epoll fd. The loop thread then pauses
// the helper, collects the events itself (wait with a zero timeout), handles
// them and resumes the helper once it is about to block again (commit).
//
//   loop thread                              helper thread
//   commit(): resume ---------------------->  snapshot (under mutex), wait ...
//                                             ... ready: stop, notify
//   libuv sees the pipe; wait(): pause, scan
//   handle events, change interest, close
//   commit(): resume ---------------------->  snapshot, wait ...
//
// The helper never waits while the loop handles events. That matters: Linux's
// poll/select hold a reference to every file they wait on, so a socket closed
// meanwhile would not be released (no FIN) until the wait returned. A close
// outside a wake-up (JavaScript closing from a promise) first gets the helper
// out of its wait (quiesce). Interest changes made while it waits wake it
// through a second pipe so it re-takes its snapshot.
//
// On Windows both "pipes" are connected loopback TCP pairs (platform.h):
// Winsock's select waits only on sockets, and libuv's uv_poll there takes a
// socket (uv_poll_init_socket), not a pipe.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace reactor {

class ReadinessThread {
 public:
  // `snapshot` runs on the helper thread with the mutex held and copies the
  // watched set. `block(wake_fd)` runs without it and waits until a watched fd
  // or wake_fd is ready: > 0 when a watched fd is ready, 0 when only woken.
  ReadinessThread(std::function<void()> snapshot, std::function<int(int)> block);
  ~ReadinessThread();
  ReadinessThread(const ReadinessThread&) = delete;
  ReadinessThread& operator=(const ReadinessThread&) = delete;

  // Creates the pipes (socket pairs on Windows) and starts the thread; false
  // (and *error) on failure.
  bool start(std::string* error);
  int notify_fd() const { return notify_read_; }
  // The highest fd of its own (select can only take fds below FD_SETSIZE).
  int highest_fd() const {
    return std::max({notify_read_, notify_write_, wake_read_, wake_write_});
  }
  // Held by the loop thread while it changes the watched set.
  std::mutex& mutex() { return mutex_; }
  // The watched set changed (call with the mutex held).
  void changed() { changed_ = true; }
  // Loop thread, before collecting events: the helper stops watching.
  void pause();
  // Loop thread, before an fd it may be waiting on closes (mutex not held).
  void quiesce();
  // Loop thread, about to block: watch (again) with the current set.
  void resume();

 private:
  void run();
  // With the mutex held: wake the helper and wait until it is out of block().
  void leave_wait(std::unique_lock<std::mutex>& lock);

  std::function<void()> snapshot_;
  std::function<int(int)> block_;
  std::mutex mutex_;
  std::condition_variable armed_cv_;
  std::condition_variable idle_cv_;
  bool armed_ = false;
  bool blocking_ = false;  // in block()
  uint64_t waits_ = 0;     // block() calls finished
  bool changed_ = false;
  bool stop_ = false;
  int notify_read_ = -1, notify_write_ = -1;
  int wake_read_ = -1, wake_write_ = -1;
  std::thread thread_;
};

}  // namespace reactor
