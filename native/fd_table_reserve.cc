#include "fd_table_reserve.h"

#include <algorithm>
#include <cstdio>
#include <system_error>

#ifdef __linux__
#include <fcntl.h>
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

void FdTableReserve::reserve_for(int fd) {
  int64_t reach = reach_;
  while (fd >= reach / 4) reach *= 4;
  ask(reach);
}

// The descriptor limit (what a table ever needs to cover); 0 where unknown.
static int64_t descriptor_limit() {
#ifdef __linux__
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  return limit.rlim_cur == RLIM_INFINITY ? INT_MAX : std::min<int64_t>(limit.rlim_cur, INT_MAX);
#else
  return 0;
#endif
}

// The size of this process's descriptor table (FDSize in /proc/self/status);
// 0 where unknown.
static int64_t table_size() {
#ifdef __linux__
  FILE* status = std::fopen("/proc/self/status", "re");
  if (!status) return 0;
  char line[256];
  long long size = 0;
  while (std::fgets(line, sizeof line, status)) {
    if (std::sscanf(line, "FDSize: %lld", &size) == 1) break;
  }
  std::fclose(status);
  return size;
#else
  return 0;
#endif
}

void FdTableReserve::ask(int64_t reach) {
  reach_ = reach;
  trigger_ = static_cast<int>(std::min<int64_t>(reach / 4, INT_MAX));
  int64_t want = std::min(reach, descriptor_limit());
  if (want <= kKernelFirstTable) return;
  // A table that covers it already is left alone: near the limit, the copy
  // would take a descriptor from the loop for a moment. Read here, not on
  // the helper: reading takes a descriptor, and the lowest free number is
  // the loop's to take.
  if (table_size() >= want) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (want <= wanted_) return;
    wanted_ = want;
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
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || wanted_ > reserved_; });
    if (stopping_) break;
    int64_t want = wanted_;
    lock.unlock();
    // F_DUPFD takes the lowest free number from `want - 1` on, so it never
    // replaces a descriptor in use.
    int copy = ::fcntl(source_, F_DUPFD_CLOEXEC, static_cast<int>(want - 1));
    if (copy >= 0) ::close(copy);
    lock.lock();
    reserved_ = want;
  }
#endif
}

}  // namespace reactor
