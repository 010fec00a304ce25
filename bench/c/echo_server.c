// The practical limit: a minimal epoll echo server in C (level-triggered,
// one read and one write per ready socket, unsent tail kept per connection).
//   echo_server PORT   prints "listening PORT" when ready; SIGTERM/SIGINT stop it.
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define READ_SIZE 65536

typedef struct {
  char *pending;
  size_t length;
} Tail;

static Tail *tails;
static int tail_capacity;
static volatile sig_atomic_t stopping;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static Tail *tail_for(int fd) {
  if (fd >= tail_capacity) {
    int capacity = tail_capacity ? tail_capacity : 1024;
    while (capacity <= fd) capacity *= 2;
    tails = realloc(tails, sizeof(Tail) * capacity);
    memset(tails + tail_capacity, 0, sizeof(Tail) * (capacity - tail_capacity));
    tail_capacity = capacity;
  }
  return &tails[fd];
}

static void drop(int epfd, int fd) {
  Tail *t = tail_for(fd);
  free(t->pending);
  t->pending = NULL;
  t->length = 0;
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
}

// Sends the queued tail first, then `data`; whatever is left is queued.
static int send_all(int epfd, int fd, const char *data, size_t length) {
  Tail *t = tail_for(fd);
  if (t->length) {
    t->pending = realloc(t->pending, t->length + length);
    memcpy(t->pending + t->length, data, length);
    t->length += length;
    data = t->pending;
    length = t->length;
  }
  ssize_t n = length ? send(fd, data, length, MSG_NOSIGNAL) : 0;
  if (n < 0 && errno != EAGAIN) return -1;
  size_t sent = n < 0 ? 0 : (size_t)n;
  size_t left = length - sent;
  int had_tail = t->length != 0;
  if (left) {
    char *rest = malloc(left);
    memcpy(rest, data + sent, left);
    free(t->pending);
    t->pending = rest;
    t->length = left;
  } else {
    free(t->pending);
    t->pending = NULL;
    t->length = 0;
  }
  if ((left != 0) != had_tail) {
    struct epoll_event ev = {.events = EPOLLIN | (left ? EPOLLOUT : 0), .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
  }
  return 0;
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 511)) {
    perror("listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(lfd, (struct sockaddr *)&addr, &len);
  printf("listening %d\n", ntohs(addr.sin_port));
  fflush(stdout);

  int epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event events[MAX_EVENTS];
  static char buffer[READ_SIZE];

  while (!stopping) {
    int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (int k = 0; k < 64; k++) {
          int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(epfd, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      if (events[i].events & EPOLLOUT) {
        if (send_all(epfd, fd, NULL, 0) < 0) {
          drop(epfd, fd);
          continue;
        }
      }
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t r = recv(fd, buffer, sizeof buffer, 0);
        if (r > 0) {
          if (send_all(epfd, fd, buffer, (size_t)r) < 0) drop(epfd, fd);
        } else if (r == 0 || errno != EAGAIN) {
          drop(epfd, fd);
        }
      }
    }
  }
  return 0;
}
