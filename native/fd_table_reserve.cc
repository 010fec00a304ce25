#include "fd_table_reserve.h"

#include <algorithm>
#include <system_error>

#ifdef __linux__
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace reactor {

FdTableReserve::~FdTableReserve() {
  if (!helper_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  helper_.join();
}

int64_t FdTableReserve::reserved() {
  std::lock_guard<std::mutex> lock(mutex_);
  return reserved_;
}

void FdTableReserve::reserve_for(int fd) {
  int64_t reach = reach_;
  while (fd >= reach / 4) reach *= 4;
  ask(reach);
}

void FdTableReserve::ask(int64_t reach) {
  reach_ = reach;
  trigger_ = static_cast<int>(std::min<int64_t>(reach / 4, INT_MAX));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    wanted_ = reach;
  }
  if (helper_.joinable()) {
    wake_.notify_one();
    return;
  }
  try {
    helper_ = std::thread([this] { run(); });
  } catch (const std::system_error&) {
    trigger_ = INT_MAX;  // no thread to spare: the table grows the ordinary way
  }
}

void FdTableReserve::run() {
#ifdef __linux__
  int own = ::eventfd(0, EFD_CLOEXEC);
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || wanted_ > reserved_; });
    if (stopping_) break;
    int64_t want = wanted_;
    lock.unlock();
    // F_DUPFD takes the lowest free number from `last` on, so it never
    // replaces a descriptor in use; beyond the limit there is nothing to reserve.
    rlimit limit{};
    int64_t cap = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                      ? static_cast<int64_t>(limit.rlim_cur)
                      : want;
    int last = static_cast<int>(std::min<int64_t>({want, cap, INT_MAX}) - 1);
    int copy = own >= 0 ? ::fcntl(own, F_DUPFD_CLOEXEC, last) : -1;
    if (copy >= 0) ::close(copy);
    lock.lock();
    reserved_ = want;
  }
  lock.unlock();
  if (own >= 0) ::close(own);
#endif
}

}  // namespace reactor
