// FdTableReserve (Linux): a descriptor noted at a quarter of what was reserved
// (or a listener added) has the helper grow the process's descriptor table to
// four times that (within the descriptor limit), in the background,
// without replacing or leaking a descriptor.
#ifdef __linux__
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>

#include "../fd_table_reserve.h"
#include "test_framework.h"

namespace {

// The size of this process's descriptor table (FDSize in /proc/self/status).
int64_t table_size() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("FDSize:", 0) == 0) return std::stoll(line.substr(7));
  }
  return -1;
}

int64_t open_descriptors() {
  int64_t count = 0;
  for (int fd = 0; fd < 65536; fd++) count += ::fcntl(fd, F_GETFD) >= 0;
  return count;
}

// What the reserve may take for `reach`: no more than the descriptor limit.
int64_t allowed(int64_t reach) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  return std::min<int64_t>(reach, static_cast<int64_t>(limit.rlim_cur));
}

// A descriptor for the reserve to duplicate, closed with the test.
struct Source {
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ~Source() { ::close(fd); }
};

int64_t threads() {
  int64_t count = 0;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) count = std::stoll(line.substr(8));
  }
  return count;
}

// The helper works in the background and tells nobody; the table is watched.
bool table_covers_within(int64_t want) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (table_size() < want) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace

TEST(fd_table_reserve_grows_the_table_to_four_times_ahead) {
  Source source;
  REQUIRE(source.fd >= 0);
  int64_t before = open_descriptors();
  {
    reactor::FdTableReserve reserve(source.fd);
    // Past the first trigger (64) and the second (256): 256 × 4 × 4 entries.
    reserve.note(300);
    REQUIRE(table_covers_within(allowed(4096)));
  }
  CHECK_EQ(open_descriptors(), before);  // the copy was closed
}

TEST(fd_table_reserve_never_replaces_a_descriptor_in_use) {
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  // The number the helper duplicates to for a reach of 16384 (or what the
  // limit allows) holds the pipe's write end.
  int last = static_cast<int>(allowed(16384) - 1);
  REQUIRE(::dup2(pipe_fds[1], last) == last);
  {
    reactor::FdTableReserve reserve(pipe_fds[0]);
    reserve.note(1500);
    REQUIRE(table_covers_within(allowed(16384)));
  }
  CHECK(::write(last, "x", 1) == 1);
  char byte = 0;
  CHECK(::read(pipe_fds[0], &byte, 1) == 1);
  CHECK_EQ(byte, 'x');
  ::close(last);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST(fd_table_reserve_takes_the_first_step_when_told_to_expect_connections) {
  Source source;
  reactor::FdTableReserve reserve(source.fd);
  reserve.expect_connections();
  REQUIRE(table_covers_within(allowed(4096)));
}

TEST(fd_table_reserve_does_nothing_below_the_first_trigger) {
  Source source;
  reactor::FdTableReserve reserve(source.fd);
  int64_t before = threads();
  reserve.note(3);
  reserve.note(63);
  CHECK_EQ(threads(), before);  // no helper started
}
#endif
