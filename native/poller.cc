// Backend selection: the one place that knows which backends this build has.
#include "poller.h"

#include <cerrno>

namespace reactor {

#if defined(__linux__)
std::unique_ptr<Poller> make_epoll_poller(std::string* error);
#define REACTOR_HAVE_EPOLL 1
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
std::unique_ptr<Poller> make_kqueue_poller(std::string* error);
#define REACTOR_HAVE_KQUEUE 1
#endif
#ifdef NATIVE_REACTOR_IO_URING
std::unique_ptr<Poller> make_io_uring_poller(int* refused);
#endif
#ifndef _WIN32
// Windows has WSAPoll, but it does not report a failed connect before
// Windows 10 2004; select serves there.
std::unique_ptr<Poller> make_poll_poller(std::string* error);
#define REACTOR_HAVE_POLL 1
#endif
std::unique_ptr<Poller> make_select_poller(std::string* error);

const char* creation_error(int error) {
  switch (error) {
    case EMFILE:
      return "EMFILE";
    case ENFILE:
      return "ENFILE";
    case ENOMEM:
      return "ENOMEM";
    case EAGAIN:
      return "EAGAIN";
    default:
      return "ERR_REACTOR_BACKEND_UNAVAILABLE";
  }
}

std::unique_ptr<Poller> make_poller(const std::string& name, std::string* error, int* fallback) {
#ifdef NATIVE_REACTOR_IO_URING
  // Opt-in: "auto" never picks it. A kernel that refuses a ring leaves the
  // caller on epoll when it accepts a fallback, and says why.
  if (name == "io_uring") {
    int refused = 0;
    if (auto poller = make_io_uring_poller(&refused)) return poller;
    if (refused == EMFILE || refused == ENFILE) {
      // Out of descriptors is no refusal of io_uring: epoll needs one too.
      *error = creation_error(refused);
      return nullptr;
    }
    if (fallback) {
      *fallback = refused;
      return make_epoll_poller(error);
    }
    *error = "ERR_REACTOR_BACKEND_UNAVAILABLE";
    return nullptr;
  }
#endif
#ifdef REACTOR_HAVE_EPOLL
  if (name == "auto" || name == "epoll") return make_epoll_poller(error);
#endif
#ifdef REACTOR_HAVE_KQUEUE
  if (name == "auto" || name == "kqueue") return make_kqueue_poller(error);
#endif
#ifdef REACTOR_HAVE_POLL
  if (name == "poll") return make_poll_poller(error);
#endif
#ifdef _WIN32
  // The only backend there, so the default.
  if (name == "auto" || name == "select") return make_select_poller(error);
#else
  if (name == "select") return make_select_poller(error);
#endif
  *error = "ERR_REACTOR_BACKEND_UNAVAILABLE";
  return nullptr;
}

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  // The platform's default first; io_uring only where a ring can be made.
  for (const char* name : {"epoll", "kqueue", "poll", "select", "io_uring"}) {
    std::string error;
    if (make_poller(name, &error)) names.push_back(name);
  }
  return names;
}

}  // namespace reactor
