#include "platform.h"

#include <algorithm>

#ifndef _WIN32
#include <fcntl.h>
#include <unistd.h>
#endif
#ifdef __linux__
#include <sys/syscall.h>
#endif

namespace reactor {

#ifdef _WIN32

int net_init() {
  // Once per process, and never undone: sockets may outlive any one addon
  // instance (worker threads each load it).
  static const int result = [] {
    WSADATA data;
    int rc = WSAStartup(MAKEWORD(2, 2), &data);
    return rc == 0 ? 0 : to_errno(rc);
  }();
  return result;
}

// The Winsock errors a socket call can end with, by the POSIX names the
// JavaScript layer already knows from Linux (as libuv maps them).
int to_errno(int code) {
  switch (code) {
    case 0:
      return 0;
    case WSAEINTR:
      return EINTR;
    case WSAEBADF:
    case WSAENOTSOCK:
      return EBADF;
    case WSAEACCES:
      return EACCES;
    case WSAEFAULT:
      return EFAULT;
    case WSAEINVAL:
      return EINVAL;
    case WSAEMFILE:
      return EMFILE;
    case WSAEWOULDBLOCK:
      return EAGAIN;
    case WSAEALREADY:
      return EALREADY;
    case WSAEMSGSIZE:
      return EMSGSIZE;
    case WSAEPROTONOSUPPORT:
      return EPROTONOSUPPORT;
    case WSAENOPROTOOPT:
      return ENOPROTOOPT;  // an option this Windows lacks (TCP_KEEPCNT before 10 1709)
    case WSAEOPNOTSUPP:
      return ENOTSUP;
    case WSAEAFNOSUPPORT:
    case WSAEPFNOSUPPORT:
      return EAFNOSUPPORT;
    case WSAEADDRINUSE:
      return EADDRINUSE;
    case WSAEADDRNOTAVAIL:
      return EADDRNOTAVAIL;
    case WSAENETDOWN:
      return ENETDOWN;
    case WSAENETUNREACH:
      return ENETUNREACH;
    case WSAENETRESET:
    case WSAECONNRESET:
      return ECONNRESET;
    case WSAECONNABORTED:
      return ECONNABORTED;
    case WSAENOBUFS:
      return ENOBUFS;
    case WSAEISCONN:
      return EISCONN;
    case WSAENOTCONN:
      return ENOTCONN;
    case WSAESHUTDOWN:
      return EPIPE;  // a send after shutdown, as Linux reports it
    case WSAETIMEDOUT:
      return ETIMEDOUT;
    case WSAECONNREFUSED:
      return ECONNREFUSED;
    case WSAEHOSTDOWN:
    case WSAEHOSTUNREACH:
      return EHOSTUNREACH;
    case WSAENAMETOOLONG:
      return ENAMETOOLONG;
    default:
      return EIO;  // no POSIX counterpart; still a failure JavaScript can name
  }
}

int socket_error() { return to_errno(WSAGetLastError()); }

// Winsock reports a non-blocking connect under way as WSAEWOULDBLOCK.
bool connect_pending(int error) { return error == EAGAIN; }

int set_nonblocking(int fd) {
  u_long on = 1;
  return ioctlsocket(native_socket(fd), FIONBIO, &on) == 0 ? 0 : -socket_error();
}

void close_socket(int fd) { closesocket(native_socket(fd)); }

int shutdown_write(int fd) {
  return ::shutdown(native_socket(fd), SD_SEND) == 0 ? 0 : -socket_error();
}

ssize_t socket_recv(int fd, void* data, size_t size, bool peek) {
  int n = ::recv(native_socket(fd), static_cast<char*>(data),
                 static_cast<int>(std::min<size_t>(size, INT_MAX)), peek ? MSG_PEEK : 0);
  return n < 0 ? -socket_error() : n;
}

ssize_t socket_send(int fd, const iovec* chunks, int count) {
  WSABUF buffers[kMaxSendChunks];
  int used = 0;
  for (int i = 0; i < count && used < kMaxSendChunks; i++) {
    size_t length = std::min<size_t>(chunks[i].iov_len, ULONG_MAX);
    buffers[used++] = {static_cast<ULONG>(length), static_cast<char*>(chunks[i].iov_base)};
    if (length < chunks[i].iov_len) break;
  }
  DWORD sent = 0;
  if (WSASend(native_socket(fd), buffers, static_cast<DWORD>(used), &sent, 0, nullptr, nullptr) !=
      0) {
    return -socket_error();
  }
  return static_cast<ssize_t>(sent);
}

namespace {

SOCKET tcp_socket() {
  return WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, nullptr, 0,
                    WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
}

bool same_address(const sockaddr_in& a, const sockaddr_in& b) {
  return a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port;
}

}  // namespace

bool make_wake_pair(int* read_end, int* write_end) {
  SOCKET listener = tcp_socket(), client = tcp_socket(), server = INVALID_SOCKET;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int length = sizeof address;
  sockaddr_in client_address{}, peer_address{};
  int client_length = sizeof client_address, peer_length = sizeof peer_address;
  auto* addr = reinterpret_cast<sockaddr*>(&address);
  bool ok =
      listener != INVALID_SOCKET && client != INVALID_SOCKET &&
      ::bind(listener, addr, sizeof address) == 0 && ::listen(listener, 1) == 0 &&
      getsockname(listener, addr, &length) == 0 && ::connect(client, addr, sizeof address) == 0 &&
      (server = ::accept(listener, nullptr, nullptr)) != INVALID_SOCKET &&
      // Another local process could have connected first.
      getsockname(client, reinterpret_cast<sockaddr*>(&client_address), &client_length) == 0 &&
      getpeername(server, reinterpret_cast<sockaddr*>(&peer_address), &peer_length) == 0 &&
      same_address(client_address, peer_address);
  if (listener != INVALID_SOCKET) closesocket(listener);
  if (ok) {
    *read_end = static_cast<int>(server);
    *write_end = static_cast<int>(client);
    SetHandleInformation(reinterpret_cast<HANDLE>(server), HANDLE_FLAG_INHERIT, 0);
    BOOL on = TRUE;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&on), sizeof on);
    ok = set_nonblocking(*read_end) == 0 && set_nonblocking(*write_end) == 0;
  }
  if (!ok) {
    if (client != INVALID_SOCKET) closesocket(client);
    if (server != INVALID_SOCKET) closesocket(server);
  }
  return ok;
}

// A full buffer already says what this byte would.
void wake_signal(int write_end) { ::send(native_socket(write_end), "", 1, 0); }

void wake_drain(int read_end) {
  char buffer[64];
  while (::recv(native_socket(read_end), buffer, sizeof buffer, 0) > 0) {
  }
}

#else  // POSIX

int net_init() { return 0; }
int to_errno(int code) { return code; }
int socket_error() { return errno; }
bool connect_pending(int error) { return error == EINPROGRESS; }

int set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 ? 0 : -errno;
}

void close_socket(int fd) { ::close(fd); }

int shutdown_write(int fd) { return ::shutdown(fd, SHUT_WR) == 0 ? 0 : -errno; }

// A write to a reset peer must be an error, never SIGPIPE: MSG_NOSIGNAL per
// call where send() has it; elsewhere (macOS) sockets.cc sets SO_NOSIGPIPE
// on every socket it creates or accepts.
#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL | MSG_DONTWAIT;
#else
constexpr int kSendFlags = MSG_DONTWAIT;
#endif

namespace {

// glibc's recv/send/sendmsg are thread-cancellation points: in a process with
// threads (Node has several) each call switches the cancel state on and off
// around the system call, ~1% of the CPU of a small echo. Nobody cancels the
// loop's thread, so on Linux the stream path makes the system calls directly.
#ifdef __linux__
ssize_t raw_recv(int fd, void* data, size_t size, int flags) {
  return syscall(SYS_recvfrom, fd, data, size, flags, nullptr, nullptr);
}
ssize_t raw_send(int fd, const void* data, size_t size, int flags) {
  return syscall(SYS_sendto, fd, data, size, flags, nullptr, 0);
}
ssize_t raw_sendmsg(int fd, const msghdr* message, int flags) {
  return syscall(SYS_sendmsg, fd, message, flags);
}
#else
ssize_t raw_recv(int fd, void* data, size_t size, int flags) {
  return ::recv(fd, data, size, flags);
}
ssize_t raw_send(int fd, const void* data, size_t size, int flags) {
  return ::send(fd, data, size, flags);
}
ssize_t raw_sendmsg(int fd, const msghdr* message, int flags) {
  return ::sendmsg(fd, message, flags);
}
#endif

}  // namespace

ssize_t socket_recv(int fd, void* data, size_t size, bool peek) {
  ssize_t n;
  do {
    n = raw_recv(fd, data, size, peek ? MSG_PEEK | MSG_DONTWAIT : 0);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

// One chunk (an echo, a reply) goes with send(): sendmsg's copying in of the
// message header and the iovec costs ~3% of the server CPU per small echo.
ssize_t socket_send(int fd, const iovec* chunks, int count) {
  msghdr message{};
  message.msg_iov = const_cast<iovec*>(chunks);
  message.msg_iovlen = static_cast<size_t>(count);
  ssize_t n;
  do {
    n = count == 1 ? raw_send(fd, chunks[0].iov_base, chunks[0].iov_len, kSendFlags)
                   : raw_sendmsg(fd, &message, kSendFlags);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

// A non-blocking, close-on-exec pipe (pipe2 is not everywhere).
bool make_wake_pair(int* read_end, int* write_end) {
  int fds[2];
  if (::pipe(fds) != 0) return false;
  for (int fd : fds) {
    set_nonblocking(fd);
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  *read_end = fds[0];
  *write_end = fds[1];
  return true;
}

// A full pipe already says what this byte would.
void wake_signal(int write_end) {
  char byte = 1;
  ssize_t ignored = ::write(write_end, &byte, 1);
  (void)ignored;
}

void wake_drain(int read_end) {
  char buffer[64];
  while (::read(read_end, buffer, sizeof buffer) > 0) {
  }
}

#endif

}  // namespace reactor
