#include "sockets.h"

#include <cstddef>
#include <cstring>

#include "platform.h"

#ifndef _WIN32
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#endif

namespace reactor {

int parse_ip(const std::string& host, int port, Endpoint* out) {
  if (port < 0 || port > 65535) return -EINVAL;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    out->length = sizeof(sockaddr_in);
    return 0;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    out->length = sizeof(sockaddr_in6);
    return 0;
  }
  return -EINVAL;
}

namespace {

#ifdef _WIN32
// Windows 10 has AF_UNIX stream sockets, but they are not supported here yet:
// listen_unix and connect_unix fail with EAFNOSUPPORT.
int parse_unix(const std::string&, Endpoint*) { return -EAFNOSUPPORT; }
#else
int parse_unix(const std::string& path, Endpoint* out) {
  auto* un = reinterpret_cast<sockaddr_un*>(&out->storage);
  if (path.empty() || path.size() >= sizeof(un->sun_path)) return -ENAMETOOLONG;
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  out->length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return 0;
}
#endif

}  // namespace

// Winsock takes option values as char*.
int set_option(int fd, int level, int name, const void* value, int size) {
  return setsockopt(native_socket(fd), level, name, static_cast<const char*>(value), size) == 0
             ? 0
             : -socket_error();
}

int set_flag(int fd, int level, int name, int value) {
  return set_option(fd, level, name, &value, sizeof value);
}

// Closes fd and passes the error through, preserving errno-derived results.
int fail(int fd, int error) {
  close_socket(fd);
  return error;
}

namespace {

#ifdef _WIN32
// For accepted sockets: non-blocking (inherited from the listener; said again
// to be sure) and kept out of child processes, like every socket we make.
int set_nonblock_cloexec(int fd) {
  if (!SetHandleInformation(reinterpret_cast<HANDLE>(native_socket(fd)), HANDLE_FLAG_INHERIT, 0)) {
    return -EBADF;
  }
  return set_nonblocking(fd);
}
#elif !defined(SOCK_NONBLOCK) || !defined(SOCK_CLOEXEC)
// Where socket() takes no such flags and accept4() is missing (macOS), they
// are set after the call. A fork+exec on another thread in between could
// inherit the fd: the same window libuv has there.
int set_nonblock_cloexec(int fd) {
  int rc = set_nonblocking(fd);
  if (rc < 0) return rc;
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) return -errno;
  return 0;
}
#endif

// Every socket we hand to the loop: no SIGPIPE on a write to a reset peer.
// Where send() has MSG_NOSIGNAL (Linux, FreeBSD...) the loop passes it on
// each call; macOS has only the per-socket SO_NOSIGPIPE.
int prepare_socket(int fd) {
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
  int rc = set_flag(fd, SOL_SOCKET, SO_NOSIGPIPE, 1);
  if (rc < 0) return fail(fd, rc);
#endif
  return fd;
}

}  // namespace

int new_socket(int family, int type) {
#ifdef _WIN32
  SOCKET s =
      WSASocketW(family, type, 0, nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET) return -socket_error();
  int fd = static_cast<int>(s);
  int rc = set_nonblocking(fd);
  if (rc < 0) return fail(fd, rc);
#elif defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
#else
  int fd = ::socket(family, type, 0);
  if (fd < 0) return -errno;
  int rc = set_nonblock_cloexec(fd);
  if (rc < 0) return fail(fd, rc);
#endif
  return prepare_socket(fd);
}

int set_reuse_port(int fd) {
#if defined(SO_REUSEPORT_LB)
  // FreeBSD: SO_REUSEPORT lets several sockets bind but sends every
  // connection to one of them; _LB balances them as Linux's SO_REUSEPORT does.
  return set_flag(fd, SOL_SOCKET, SO_REUSEPORT_LB, 1);
#elif defined(SO_REUSEPORT)
  return set_flag(fd, SOL_SOCKET, SO_REUSEPORT, 1);
#else
  return -ENOTSUP;
#endif
}

namespace {

int bind_and_listen(int fd, const Endpoint& endpoint, int backlog) {
  if (::bind(native_socket(fd), endpoint.addr(), endpoint.length) != 0) {
    return fail(fd, -socket_error());
  }
  if (::listen(native_socket(fd), backlog) != 0) return fail(fd, -socket_error());
  return fd;
}

int start_connect(int fd, const Endpoint& endpoint) {
  int error;
  do {
    error =
        ::connect(native_socket(fd), endpoint.addr(), endpoint.length) == 0 ? 0 : socket_error();
  } while (error == EINTR);
  if (error && !connect_pending(error)) return fail(fd, -error);
  return fd;
}

}  // namespace

int listen_tcp(const std::string& host, int port, const ListenOptions& options) {
  Endpoint endpoint;
  int rc = parse_ip(host, port, &endpoint);
  if (rc < 0) return rc;
  int fd = new_socket(endpoint.family(), SOCK_STREAM);
  if (fd < 0) return fd;
#ifndef _WIN32
  // A restarted server must be able to bind while old connections sit in
  // TIME_WAIT. Windows allows that anyway, and its SO_REUSEADDR would let a
  // second listener take a port in use (no EADDRINUSE): libuv leaves it off.
  if ((rc = set_flag(fd, SOL_SOCKET, SO_REUSEADDR, 1)) < 0) return fail(fd, rc);
#endif
  if (options.reuse_port && (rc = set_reuse_port(fd)) < 0) return fail(fd, rc);
  if (endpoint.family() == AF_INET6 &&
      (rc = set_flag(fd, IPPROTO_IPV6, IPV6_V6ONLY, options.ipv6_only ? 1 : 0)) < 0) {
    return fail(fd, rc);
  }
  return bind_and_listen(fd, endpoint, options.backlog);
}

int listen_unix(const std::string& path, const ListenOptions& options) {
  Endpoint endpoint;
  int rc = parse_unix(path, &endpoint);
  if (rc < 0) return rc;
  int fd = new_socket(AF_UNIX, SOCK_STREAM);
  if (fd < 0) return fd;
  return bind_and_listen(fd, endpoint, options.backlog);
}

int connect_tcp(const std::string& host, int port, const std::function<bool(int)>& usable) {
  Endpoint endpoint;
  int rc = parse_ip(host, port, &endpoint);
  if (rc < 0) return rc;
  int fd = new_socket(endpoint.family(), SOCK_STREAM);
  if (fd < 0) return fd;
  if (!usable(fd)) return fail(fd, -EMFILE);
  if ((rc = set_no_delay(fd, true)) < 0) return fail(fd, rc);
  return start_connect(fd, endpoint);
}

int connect_unix(const std::string& path, const std::function<bool(int)>& usable) {
  Endpoint endpoint;
  int rc = parse_unix(path, &endpoint);
  if (rc < 0) return rc;
  int fd = new_socket(AF_UNIX, SOCK_STREAM);
  if (fd < 0) return fd;
  if (!usable(fd)) return fail(fd, -EMFILE);
  return start_connect(fd, endpoint);
}

int accept_connection(int listen_fd) {
#ifdef _WIN32
  SOCKET s = ::accept(native_socket(listen_fd), nullptr, nullptr);
  if (s == INVALID_SOCKET) return -socket_error();
  int fd = static_cast<int>(s);
  int rc = set_nonblock_cloexec(fd);
  if (rc < 0) return fail(fd, rc);
#elif defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  // accept4: Linux, FreeBSD >= 10, NetBSD >= 8, OpenBSD >= 5.7 (all define
  // these flags); macOS has neither.
  int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return -errno;
#else
  int fd = ::accept(listen_fd, nullptr, nullptr);
  if (fd < 0) return -errno;
  int rc = set_nonblock_cloexec(fd);
  if (rc < 0) return fail(fd, rc);
#endif
  return prepare_socket(fd);
}

#ifdef _WIN32
int prepare_adopted(int, bool, bool, bool*) { return -ENOTSUP; }
#else
int prepare_adopted(int fd, bool listening, bool require_tcp, bool* tcp) {
  // SO_TYPE fails with EBADF for a closed fd and ENOTSOCK for a file, pipe or
  // tty: no fstat() needed (which would tie the portable Linux binary to
  // fstat64@GLIBC_2.33).
  int value = 0;
  socklen_t length = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) != 0) return -errno;
  if (value != SOCK_STREAM) return -EINVAL;
  value = 0;
  length = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) != 0) return -errno;
  if ((value != 0) != listening) return -EINVAL;
  sockaddr_storage storage{};
  length = sizeof storage;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return -errno;
  if (storage.ss_family != AF_INET && storage.ss_family != AF_INET6 &&
      storage.ss_family != AF_UNIX) {
    return -EAFNOSUPPORT;
  }
  *tcp = storage.ss_family != AF_UNIX;
  if (require_tcp && !*tcp) return -EPROTOTYPE;
  if (!listening) {
    length = sizeof storage;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return -errno;
  }
  int rc = set_nonblocking(fd);
  if (rc < 0) return rc;
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) return -errno;
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
  rc = set_flag(fd, SOL_SOCKET, SO_NOSIGPIPE, 1);
  if (rc < 0) return rc;
#endif
  if (*tcp && !listening) set_no_delay(fd, true);
  return 0;
}
#endif

int pending_error(int fd) {
  int error = 0;
  socklen_t length = sizeof error;
  if (getsockopt(native_socket(fd), SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&error),
                 &length) != 0) {
    return socket_error();
  }
  return to_errno(error);
}

int set_no_delay(int fd, bool enable) { return set_flag(fd, IPPROTO_TCP, TCP_NODELAY, enable); }

int set_keep_alive(int fd, bool enable, int idle_seconds, int interval_seconds, int count) {
  int rc = set_flag(fd, SOL_SOCKET, SO_KEEPALIVE, enable);
  if (rc < 0 || !enable) return rc;
#ifdef TCP_KEEPIDLE
  if (idle_seconds > 0 && (rc = set_flag(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_seconds)) < 0) {
    return rc;
  }
#elif defined(TCP_KEEPALIVE)
  // macOS names the idle time TCP_KEEPALIVE.
  if (idle_seconds > 0 && (rc = set_flag(fd, IPPROTO_TCP, TCP_KEEPALIVE, idle_seconds)) < 0) {
    return rc;
  }
#endif
#ifdef TCP_KEEPINTVL
  if (interval_seconds > 0 &&
      (rc = set_flag(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval_seconds)) < 0) {
    return rc;
  }
#endif
#ifdef TCP_KEEPCNT
  if (count > 0 && (rc = set_flag(fd, IPPROTO_TCP, TCP_KEEPCNT, count)) < 0) return rc;
#endif
  return 0;
}

int set_reset_on_close(int fd) {
  linger option{1, 0};
  return set_option(fd, SOL_SOCKET, SO_LINGER, &option, sizeof option);
}

int socket_address(int fd, bool peer, SocketAddress* out) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  auto* addr = reinterpret_cast<sockaddr*>(&storage);
  if ((peer ? getpeername(native_socket(fd), addr, &length)
            : getsockname(native_socket(fd), addr, &length)) != 0) {
    return -socket_error();
  }
  char text[INET6_ADDRSTRLEN] = {};
  switch (storage.ss_family) {
    case AF_INET: {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
      inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
      *out = {SocketAddress::kIPv4, text, ntohs(v4->sin_port)};
      return 0;
    }
    case AF_INET6: {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
      inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
      *out = {SocketAddress::kIPv6, text, ntohs(v6->sin6_port)};
      return 0;
    }
#ifndef _WIN32
    case AF_UNIX: {
      auto* un = reinterpret_cast<sockaddr_un*>(&storage);
      size_t max =
          length > offsetof(sockaddr_un, sun_path) ? length - offsetof(sockaddr_un, sun_path) : 0;
      *out = {SocketAddress::kUnix, std::string(un->sun_path, strnlen(un->sun_path, max)), 0};
      return 0;
    }
#endif
    default:
      return -EAFNOSUPPORT;
  }
}

int peer_ip(int fd, uint8_t out[16]) {
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  if (::getpeername(native_socket(fd), reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    return -socket_error();
  }
  std::memset(out, 0, 16);
  if (storage.ss_family == AF_INET) {
    out[10] = out[11] = 0xff;
    std::memcpy(out + 12, &reinterpret_cast<sockaddr_in*>(&storage)->sin_addr, 4);
  } else if (storage.ss_family == AF_INET6) {
    std::memcpy(out, &reinterpret_cast<sockaddr_in6*>(&storage)->sin6_addr, 16);
  }
  return 0;
}

int address_ip(const SocketAddress& address, uint8_t out[16]) {
  std::memset(out, 0, 16);
  if (address.family == SocketAddress::kIPv4) {
    out[10] = out[11] = 0xff;
    return inet_pton(AF_INET, address.address.c_str(), out + 12) == 1 ? 0 : -EINVAL;
  }
  if (address.family == SocketAddress::kIPv6) {
    return inet_pton(AF_INET6, address.address.c_str(), out) == 1 ? 0 : -EINVAL;
  }
  return -EAFNOSUPPORT;
}

}  // namespace reactor
