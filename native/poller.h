// The backend interface: one implementation per file (poller_epoll.cc, ...).
// A poller watches file descriptors for readiness; the loop owns the fds and
// tells the poller which readiness it wants. Tokens are opaque 64-bit values
// handed back with each event (the loop packs (slot, generation) into them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace reactor {

enum Interest : uint32_t {
  kNone = 0,
  kReadable = 1,
  kWritable = 2,
  // The peer shut down its write side, reported without reading and even
  // while unread bytes wait (a parked connection whose client went away).
  kPeerClosed = 4,
  // Completions instead of readiness, for backends whose receives() is true:
  // the backend reads the socket itself and reports kReceived events
  // (kReceive), or accepts connections and reports kAcceptedFd events
  // (kAccept). A backend that cannot do it for an fd after all reports
  // readiness instead, as for kReadable; the loop takes either.
  kReceive = 8,
  kAccept = 16,
};

enum Completion : uint8_t {
  kNoCompletion = 0,  // a readiness report (every backend)
  kReceived = 1,      // result: bytes at data (0: end of stream) or -errno
  kAcceptedFd = 2,    // result: a connected, non-blocking, close-on-exec fd or -errno
};

struct PollEvent {
  uint64_t token;
  uint32_t readable : 1;
  uint32_t writable : 1;
  uint32_t error : 1;        // an error is pending on the socket (SO_ERROR says which)
  uint32_t hangup : 1;       // both directions are shut down
  uint32_t peer_closed : 1;  // the peer shut down its write side (kPeerClosed)
  // Set by completion-based backends only; the others never touch these.
  uint8_t completion = kNoCompletion;
  // A completion's result; on a readiness report with `error`, the -errno of
  // the backend's failed request (io_uring's poll), else 0.
  int32_t result = 0;
  // kReceived bytes, lent by the backend until the next wait() or commit().
  const uint8_t* data = nullptr;
};

class Poller {
 public:
  virtual ~Poller() = default;
  virtual const char* name() const = 0;
  // An fd that becomes readable when events are pending, so the poller can be
  // nested in another loop (Node's libuv loop). Backends whose own wait is
  // not a pollable fd (poll, select) provide one with a helper thread
  // (poller_thread.h).
  virtual int pollable_fd() const = 0;
  // Whether fd can be watched at all (select: only fds below FD_SETSIZE, or
  // on Windows only as many sockets as an fd_set holds). A yes holds fd's
  // place until remove(fd); asking again for the same fd is harmless. The loop
  // asks before taking a socket in, so a refusal is a clean error.
  virtual bool claim(int fd) { return fd >= 0; }
  // Whether kPeerClosed works. Without it the loop watches parked
  // connections for readability and peeks.
  virtual bool reports_peer_closed() const { return false; }
  // Whether kReceive and kAccept are understood (io_uring's multishot recv
  // and accept). Elsewhere the loop never asks for them. The bytes of a
  // receive cancelled by modify() or detach() that were already taken from
  // the socket are still reported, so none is lost; after remove() nothing
  // about the fd is (an accepted fd still in flight is closed).
  virtual bool receives() const { return false; }
  // Register, change or drop interest. Return 0 or -errno.
  virtual int add(int fd, uint64_t token, uint32_t interest) = 0;
  virtual int modify(int fd, uint64_t token, uint32_t interest) = 0;
  // Called right before the loop closes fd.
  virtual int remove(int fd) = 0;
  // Stops watching fd, which stays open; add() watches it again. Needed where
  // a backend reports a condition whatever the interest (epoll's hang-up) and
  // the loop must not hear it for a while (a paused connection).
  virtual int detach(int fd) = 0;
  // The loop has handled what it collected and made its interest changes;
  // called before it blocks (threaded backends watch again from here).
  virtual void commit() {}
  // Collect up to max ready events, waiting at most timeout_ms (0: don't
  // block, -1: forever). Returns the count or -errno.
  virtual int wait(PollEvent* events, int max, int timeout_ms) = 0;
};

// Creates the named backend ("auto" picks the platform default). Returns null
// and sets *error to an error code name when it is unavailable. Given
// `fallback`, io_uring refused by the kernel at run time falls back to epoll
// and *fallback is set to the errno of the refusal (else left alone).
std::unique_ptr<Poller> make_poller(const std::string& name, std::string* error,
                                    int* fallback = nullptr);

// The *error of a backend that could not be made because errno `error`: its
// name when the system ran out of something (EMFILE, ENFILE, ENOMEM, EAGAIN:
// the caller may free some and retry), else ERR_REACTOR_BACKEND_UNAVAILABLE.
const char* creation_error(int error);

// The backends this build has and this machine can create, default first.
std::vector<std::string> available_backends();

}  // namespace reactor
