// The tests' own sockets (the clients and peers the loop talks to), the same
// on POSIX and Winsock. Errors are -errno, as in the core (platform.h).
#pragma once

#include "../platform.h"

#ifndef _WIN32
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#endif

namespace testing {

// Whether fd is readable (or at EOF, or failed) within timeout_ms.
inline bool readable_within(int fd, int timeout_ms) {
#ifdef _WIN32
  WSAPOLLFD p{reactor::native_socket(fd), POLLRDNORM, 0};
  return WSAPoll(&p, 1, timeout_ms) == 1;
#else
  pollfd p{fd, POLLIN, 0};
  int n;
  do {
    n = ::poll(&p, 1, timeout_ms);
  } while (n < 0 && errno == EINTR);
  return n == 1 && (p.revents & POLLIN);
#endif
}

// A receive that never blocks, on a blocking socket too: bytes, 0 at EOF,
// or -errno (-EAGAIN when nothing waits).
inline ssize_t recv_now(int fd, void* data, size_t size) {
#ifdef _WIN32
  // No per-call MSG_DONTWAIT: receive only what is already there.
  if (!readable_within(fd, 0)) return -EAGAIN;
  return reactor::socket_recv(fd, data, size);
#else
  ssize_t n = ::recv(fd, data, size, MSG_DONTWAIT);
  return n < 0 ? -errno : n;
#endif
}

// A send that never blocks for long (Windows: no MSG_DONTWAIT, but the few
// bytes the tests send this way always fit the socket's buffer).
inline void send_now(int fd, const char* data, size_t size) {
#ifdef _WIN32
  ::send(reactor::native_socket(fd), data, static_cast<int>(size), 0);
#else
  ::send(fd, data, size, MSG_DONTWAIT);
#endif
}

// A blocking loopback client outside the loop, or -1.
inline int raw_connect(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
#ifdef _WIN32
  SOCKET s = ::socket(AF_INET, SOCK_STREAM, 0);
  if (s == INVALID_SOCKET) return -1;
  int fd = static_cast<int>(s);
#else
#ifdef SOCK_CLOEXEC
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
#else
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);  // macOS: no such flag
#endif
  if (fd < 0) return -1;
#endif
  if (::connect(reactor::native_socket(fd), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    reactor::close_socket(fd);
    return -1;
  }
  return fd;
}

inline void shutdown_both(int fd) {
#ifdef _WIN32
  ::shutdown(reactor::native_socket(fd), SD_BOTH);
#else
  ::shutdown(fd, SHUT_RDWR);
#endif
}

// A connected pair of non-blocking stream sockets: socketpair() on POSIX, a
// loopback TCP pair on Windows (which has no socketpair).
inline bool stream_pair(int* a, int* b) {
#ifdef _WIN32
  return reactor::make_wake_pair(a, b);
#else
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return false;
  // Flags set apart: macOS's socketpair takes no SOCK_NONBLOCK.
  for (int fd : sv) reactor::set_nonblocking(fd);
  *a = sv[0];
  *b = sv[1];
  return true;
#endif
}

#ifndef _WIN32  // no descriptor table to count on Windows
// How many descriptors this process has open.
inline int count_fds() {
  // Only differences are compared, so the two ways need not agree.
  if (DIR* dir = opendir("/proc/self/fd")) {
    int n = 0;
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') n++;
    }
    closedir(dir);
    return n;
  }
  // No /proc (macOS, BSD): probe every number up to the limit.
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
  int max = limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > 65536
                ? 65536
                : static_cast<int>(limit.rlim_cur);
  int n = 0;
  for (int fd = 0; fd < max; fd++) {
    if (fcntl(fd, F_GETFD) != -1) n++;
  }
  return n;
}
#endif

}  // namespace testing
