#include "poller_thread.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace reactor {
namespace {

// A non-blocking, close-on-exec pipe (pipe2 is not everywhere).
bool make_pipe(int* read_end, int* write_end) {
  int fds[2];
  if (::pipe(fds) != 0) return false;
  for (int fd : fds) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  *read_end = fds[0];
  *write_end = fds[1];
  return true;
}

void drain(int fd) {
  char buffer[64];
  while (::read(fd, buffer, sizeof buffer) > 0) {
  }
}

// A full pipe already says what this byte would.
void signal(int fd) {
  char byte = 1;
  ssize_t ignored = ::write(fd, &byte, 1);
  (void)ignored;
}

void close_fd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

}  // namespace

ReadinessThread::ReadinessThread(std::function<void()> snapshot, std::function<int(int)> block)
    : snapshot_(std::move(snapshot)), block_(std::move(block)) {}

ReadinessThread::~ReadinessThread() {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    armed_cv_.notify_one();
    signal(wake_write_);
    thread_.join();
  }
  close_fd(&notify_read_);
  close_fd(&notify_write_);
  close_fd(&wake_read_);
  close_fd(&wake_write_);
}

bool ReadinessThread::start(std::string* error) {
  if (!make_pipe(&notify_read_, &notify_write_) || !make_pipe(&wake_read_, &wake_write_)) {
    *error = "ERR_REACTOR_BACKEND_UNAVAILABLE";
    return false;
  }
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error&) {
    *error = "ERR_REACTOR_BACKEND_UNAVAILABLE";
    return false;
  }
  return true;
}

void ReadinessThread::leave_wait(std::unique_lock<std::mutex>& lock) {
  if (!blocking_) return;
  // That wait is over once `waits_` moves, even if the helper (still armed)
  // has started the next one on a fresh snapshot.
  uint64_t current = waits_;
  signal(wake_write_);
  idle_cv_.wait(lock, [&] { return waits_ != current; });
}

void ReadinessThread::pause() {
  std::unique_lock<std::mutex> lock(mutex_);
  armed_ = false;
  leave_wait(lock);
  drain(notify_read_);
}

void ReadinessThread::quiesce() {
  std::unique_lock<std::mutex> lock(mutex_);
  leave_wait(lock);
}

void ReadinessThread::resume() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!armed_) {
    armed_ = true;
    armed_cv_.notify_one();
  } else if (changed_) {
    signal(wake_write_);  // its snapshot is stale
  }
}

void ReadinessThread::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    armed_cv_.wait(lock, [this] { return armed_ || stop_; });
    if (stop_) break;
    snapshot_();
    changed_ = false;
    blocking_ = true;
    lock.unlock();
    int ready = block_(wake_read_);
    drain(wake_read_);
    lock.lock();
    blocking_ = false;
    waits_++;
    idle_cv_.notify_all();
    if (ready > 0 && armed_ && !stop_) {
      armed_ = false;
      signal(notify_write_);
    }
  }
}

}  // namespace reactor
