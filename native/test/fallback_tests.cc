// io_uring refused by the kernel at run time (a seccomp policy, a sysctl, a
// kernel without it) falls back to epoll when the caller accepts a fallback,
// and reports the refusal; asked strictly, it is simply unavailable. Each
// case runs in a child whose io_uring_setup a seccomp filter refuses.
#if defined(__linux__) && defined(NATIVE_REACTOR_IO_URING)

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "../poller.h"
#include "seccomp_deny.h"
#include "test_framework.h"

using namespace reactor;

namespace {

// The child's exit status names the first expectation that failed (0: none).
int check_fallback(int refusal) {
  if (!deny_io_uring_setup(refusal)) return 10;
  std::string error;
  if (make_poller("io_uring", &error) != nullptr) return 11;
  if (error != "ERR_REACTOR_BACKEND_UNAVAILABLE") return 12;
  int fallback = 0;
  std::unique_ptr<Poller> poller = make_poller("io_uring", &error, &fallback);
  if (!poller || std::string(poller->name()) != "epoll") return 13;
  if (fallback != refusal) return 14;
  std::vector<std::string> names = available_backends();
  if (std::find(names.begin(), names.end(), "io_uring") != names.end()) return 15;
  // A backend that works never reports a fallback.
  int untouched = 0;
  if (!make_poller("poll", &error, &untouched) || untouched != 0) return 16;
  return 0;
}

}  // namespace

TEST(io_uring_refused_by_the_kernel_falls_back_to_epoll) {
  for (int refusal : {EPERM, ENOSYS}) {
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) _exit(check_fallback(refusal));
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "refusal " << refusal << ": child exit status " << WEXITSTATUS(status));
  }
}

#endif
