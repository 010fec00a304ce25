// Socket set-up and options: the syscalls around a socket that are not the
// hot path (create, bind, listen, connect, options, addresses). Every function
// returns 0 (or an fd) on success and -errno on failure.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "platform.h"

namespace reactor {

struct ListenOptions {
  int backlog = 511;
  bool reuse_port = false;
  bool ipv6_only = false;
};

struct SocketAddress {
  enum Family { kNone, kIPv4, kIPv6, kUnix } family = kNone;
  std::string address;  // numeric host or Unix path
  int port = 0;
};

// A socket address in the system's form, ready for bind/connect/sendto.
struct Endpoint {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family() const { return storage.ss_family; }
  const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// An IPv4 or IPv6 literal (no name lookup) and a port 0-65535; -EINVAL else.
int parse_ip(const std::string& host, int port, Endpoint* out);
// A new socket of `family` and `type` (SOCK_STREAM, SOCK_DGRAM): non-blocking,
// close-on-exec, never raising SIGPIPE.
int new_socket(int family, int type);
// Closes fd and returns error: for set-up paths that give up on a new socket.
int fail(int fd, int error);
int set_option(int fd, int level, int name, const void* value, int size);
int set_flag(int fd, int level, int name, int value);
// Lets several sockets bind one port, the kernel balancing between them
// (SO_REUSEPORT; SO_REUSEPORT_LB on FreeBSD); -ENOTSUP where there is none.
int set_reuse_port(int fd);

int listen_tcp(const std::string& host, int port, const ListenOptions& options);
int listen_unix(const std::string& path, const ListenOptions& options);
// Starts a non-blocking connect; the result arrives as writability. The new
// socket is first offered to `usable` (the backend's claim): when refused it
// is closed with -EMFILE before anyone is dialled.
int connect_tcp(const std::string& host, int port, const std::function<bool(int)>& usable);
int connect_unix(const std::string& path, const std::function<bool(int)>& usable);
// Checks a socket made elsewhere before the loop takes it: a stream socket
// (-EBADF if fd is not open, -ENOTSOCK if it is no socket, -EINVAL for
// another type), listening or connected as `listening` says (-EINVAL, or
// -ENOTCONN for a stream that is neither), of a family we serve (-EAFNOSUPPORT;
// -EPROTOTYPE for a Unix socket when require_tcp). Then makes it non-blocking and close-on-exec
// (TCP_NODELAY on a TCP connection, as on accepted ones). Never closes fd. POSIX only: -ENOTSUP on
// Windows.
int prepare_adopted(int fd, bool listening, bool require_tcp, bool* tcp);
// Accepts one connection as a non-blocking, close-on-exec fd.
int accept_connection(int listen_fd);
int pending_error(int fd);  // SO_ERROR
int set_no_delay(int fd, bool enable);
int set_keep_alive(int fd, bool enable, int idle_seconds, int interval_seconds, int count);
int set_reset_on_close(int fd);  // SO_LINGER 0: close() sends RST
int socket_address(int fd, bool peer, SocketAddress* out);
// The peer's IP without its port, IPv4 as IPv4-mapped IPv6 (16 bytes).
int peer_ip(int fd, uint8_t out[16]);
// The same from a numeric address (a PROXY header's client); -EAFNOSUPPORT
// for a Unix one.
int address_ip(const SocketAddress& address, uint8_t out[16]);

}  // namespace reactor
