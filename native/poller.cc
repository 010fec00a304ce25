// Backend selection: the one place that knows which backends this build has.
#include "poller.h"

namespace reactor {

std::unique_ptr<Poller> make_epoll_poller(std::string* error);
std::unique_ptr<Poller> make_poll_poller(std::string* error);
std::unique_ptr<Poller> make_select_poller(std::string* error);
#ifdef NATIVE_REACTOR_IO_URING
std::unique_ptr<Poller> make_io_uring_poller(std::string* error);
#endif

std::unique_ptr<Poller> make_poller(const std::string& name, std::string* error) {
#ifdef __linux__
  if (name == "auto" || name == "epoll") return make_epoll_poller(error);
#endif
#ifdef NATIVE_REACTOR_IO_URING
  // Opt-in: "auto" never picks it.
  if (name == "io_uring") return make_io_uring_poller(error);
#endif
  if (name == "poll") return make_poll_poller(error);
  if (name == "select") return make_select_poller(error);
  *error = "ERR_REACTOR_BACKEND_UNAVAILABLE";
  return nullptr;
}

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  // io_uring is listed only where this machine lets us create a ring.
  for (const char* name : {"epoll", "poll", "select", "io_uring"}) {
    std::string error;
    if (make_poller(name, &error)) names.push_back(name);
  }
  return names;
}

}  // namespace reactor
