// deny_io_uring EPERM|ENOSYS command [args...]
// Runs the command with io_uring_setup refused by a seccomp filter, so a test
// can watch a Reactor asked for io_uring fall back to epoll and say so.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "seccomp_deny.h"

int main(int argc, char** argv) {
  int refusal = 0;
  if (argc >= 3 && std::strcmp(argv[1], "EPERM") == 0) refusal = EPERM;
  if (argc >= 3 && std::strcmp(argv[1], "ENOSYS") == 0) refusal = ENOSYS;
  if (refusal == 0) {
    std::fprintf(stderr, "usage: deny_io_uring EPERM|ENOSYS command [args...]\n");
    return 2;
  }
  if (!reactor::deny_io_uring_setup(refusal)) {
    std::perror("deny_io_uring: seccomp");
    return 3;
  }
  execvp(argv[2], argv + 2);
  std::perror("deny_io_uring: exec");
  return 127;
}
