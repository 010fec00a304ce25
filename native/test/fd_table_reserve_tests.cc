// FdTableReserve (Linux): a descriptor noted at a quarter of what was reserved
// (or a listener added) has the helper grow the process's descriptor table to
// four times that, in the background, without replacing or leaking a
// descriptor.
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

int64_t descriptor_limit() {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  return static_cast<int64_t>(limit.rlim_cur);
}

// The helper reports what it reserved; it has no other event to wait on.
bool reserved_within(reactor::FdTableReserve& reserve, int64_t want) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (reserve.reserved() < want) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace

TEST(fd_table_reserve_grows_the_table_to_four_times_ahead) {
  reactor::FdTableReserve reserve;
  int64_t before = open_descriptors();
  // Past the first trigger (64) and the second (256): 256 × 4 × 4 entries.
  reserve.note(300);
  REQUIRE(reserved_within(reserve, 4096));
  CHECK(table_size() >= std::min<int64_t>(4096, descriptor_limit()));
  CHECK_EQ(open_descriptors(), before + 1);  // the helper's own, nothing else
}

TEST(fd_table_reserve_never_replaces_a_descriptor_in_use) {
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  // The number the helper duplicates to for a reach of 16384 (or the last
  // one the limit allows) holds the pipe's write end.
  int last = static_cast<int>(std::min<int64_t>(16384, descriptor_limit()) - 1);
  REQUIRE(::dup2(pipe_fds[1], last) == last);
  {
    reactor::FdTableReserve reserve;
    reserve.note(1500);
    REQUIRE(reserved_within(reserve, 16384));
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
  reactor::FdTableReserve reserve;
  reserve.expect_connections();
  REQUIRE(reserved_within(reserve, 4096));
  CHECK(table_size() >= std::min<int64_t>(4096, descriptor_limit()));
  reserve.expect_connections();  // once only: more listeners ask no more
  reserve.note(1000);            // below the next trigger (1024)
  CHECK_EQ(reserve.reserved(), 4096);
}

TEST(fd_table_reserve_does_nothing_below_the_first_trigger) {
  reactor::FdTableReserve reserve;
  int64_t before = open_descriptors();
  reserve.note(3);
  reserve.note(63);
  CHECK_EQ(reserve.reserved(), 0);
  CHECK_EQ(open_descriptors(), before);  // no helper, no descriptor of its own
}
#endif
