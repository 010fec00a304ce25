#include "poller_thread.h"

#include <cerrno>

#include "platform.h"
#include "poller.h"

namespace reactor {
namespace {

void close_end(int* fd) {
  if (*fd >= 0) close_socket(*fd);
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
    wake_signal(wake_write_);
    thread_.join();
  }
  close_end(&notify_read_);
  close_end(&notify_write_);
  close_end(&wake_read_);
  close_end(&wake_write_);
}

bool ReadinessThread::start(std::string* error) {
  errno = 0;  // Winsock's failures leave it alone: no errno, no resource named
  if (!make_wake_pair(&notify_read_, &notify_write_) ||
      !make_wake_pair(&wake_read_, &wake_write_)) {
    *error = creation_error(errno);
    return false;
  }
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& failure) {
    *error = creation_error(failure.code().value());  // EAGAIN: no thread to be had
    return false;
  }
  return true;
}

void ReadinessThread::leave_wait(std::unique_lock<std::mutex>& lock) {
  if (!blocking_) return;
  // That wait is over once `waits_` moves, even if the helper (still armed)
  // has started the next one on a fresh snapshot.
  uint64_t current = waits_;
  wake_signal(wake_write_);
  idle_cv_.wait(lock, [&] { return waits_ != current; });
}

void ReadinessThread::pause() {
  std::unique_lock<std::mutex> lock(mutex_);
  armed_ = false;
  leave_wait(lock);
  wake_drain(notify_read_);
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
    wake_signal(wake_write_);  // its snapshot is stale
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
    wake_drain(wake_read_);
    lock.lock();
    blocking_ = false;
    waits_++;
    idle_cv_.notify_all();
    if (ready > 0 && armed_ && !stop_) {
      armed_ = false;
      wake_signal(notify_write_);
    }
  }
}

}  // namespace reactor
