// What POSIX and Winsock spell differently, in one place: socket headers,
// closing, errors, non-blocking sends and receives, and the wake pairs of the
// readiness thread. The rest of the core is written against this and standard
// C++.
//
// A socket is an `int` everywhere. A Winsock SOCKET is a kernel handle, and
// Windows keeps handle values within 32 bits (sign-extended, so that 32- and
// 64-bit processes can share them), so it converts to int and back without
// loss; INVALID_SOCKET is checked before the conversion. Errors are
// errno-style codes from <errno.h>: Winsock's WSAE* codes are mapped to the
// POSIX names (addon.cc turns them into libuv's codes for JavaScript).
#pragma once

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#endif

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>

#ifdef _WIN32
// The write path's scatter list, laid out as POSIX's (WSABUF orders its
// fields the other way; socket_send converts).
struct iovec {
  void* iov_base;
  size_t iov_len;
};
#if !defined(_SSIZE_T_) && !defined(_SSIZE_T_DEFINED)
typedef intptr_t ssize_t;  // as libuv's uv/win.h defines it, so both can be included
#define _SSIZE_T_
#define _SSIZE_T_DEFINED
#endif
#endif

namespace reactor {

#ifdef _WIN32
using NativeSocket = SOCKET;
#else
using NativeSocket = int;
#endif
// What the system's socket calls take (see the top of this file).
inline NativeSocket native_socket(int fd) {
  return static_cast<NativeSocket>(static_cast<intptr_t>(fd));
}

// Before any socket call: WSAStartup on Windows, done once per process
// however often this is called (each addon instance does). 0 or an
// errno-style code.
int net_init();
// An errno-style code for a system error code (errno, or a WSAE* code).
int to_errno(int system_code);
// The errno-style code of the last failed socket call on this thread.
int socket_error();
// Whether a non-blocking connect() that failed with `error` is under way.
bool connect_pending(int error);
int set_nonblocking(int fd);
void close_socket(int fd);
int shutdown_write(int fd);
// Bytes received, 0 at EOF, or -errno (EAGAIN when nothing waits).
ssize_t socket_recv(int fd, void* data, size_t size, bool peek = false);
// Bytes sent (possibly fewer than given), or -errno; never raises SIGPIPE.
// Takes at most kMaxSendChunks chunks.
ssize_t socket_send(int fd, const iovec* chunks, int count);
#ifdef _WIN32
constexpr int kMaxSendChunks = 64;
#else
constexpr int kMaxSendChunks = IOV_MAX;
#endif

// The readiness thread's wake-ups: a pipe on POSIX; a connected loopback TCP
// pair on Windows, where select() and libuv's uv_poll take only sockets. Both
// ends non-blocking and not inherited by child processes.
bool make_wake_pair(int* read_end, int* write_end);
void wake_signal(int write_end);
void wake_drain(int read_end);

}  // namespace reactor
