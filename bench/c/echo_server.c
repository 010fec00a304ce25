// The practical limit: a minimal epoll echo server in C (level-triggered,
// one read and one write per ready socket, unsent tail kept per connection).
//   echo_server PORT [MAX [IDLE_MS]]   prints "listening PORT" when ready;
//   SIGTERM/SIGINT stop it.
// With MAX (0: no cap), at most MAX connections are open at once: at the cap the
// listening socket leaves the epoll set, so new clients wait in the kernel's
// backlog (their bytes buffered by the kernel) until a connection closes.
// With IDLE_MS, a connection that has sent nothing for that long is ended
// (shutdown of the write side; it is closed when the peer closes): connections
// sit in a list ordered by their last read (O(1) per read, as the timeout is
// the same for all), and epoll_wait sleeps until the oldest one is due.
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
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define READ_SIZE 65536

typedef struct {
  char *pending;
  size_t length;
  // Idle reaping: neighbours in the activity list (-1: none) and the last read.
  int prev, next;
  int listed;
  long long last_ms;
} Tail;

static Tail *tails;
static int tail_capacity;
static volatile sig_atomic_t stopping;
static int open_count, max_open, accepting = 1, listen_fd;
static long long idle_ms;
static int oldest = -1, newest = -1;  // the activity list, oldest read first

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

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

static void unlist(int fd) {
  Tail *t = tail_for(fd);
  if (!t->listed) return;
  if (t->prev >= 0) tails[t->prev].next = t->next; else oldest = t->next;
  if (t->next >= 0) tails[t->next].prev = t->prev; else newest = t->prev;
  t->listed = 0;
}

// Marks `fd` active now: it moves to the newest end of the list.
static void touch(int fd, long long now) {
  if (!idle_ms) return;
  unlist(fd);
  Tail *t = tail_for(fd);
  t->last_ms = now;
  t->prev = newest;
  t->next = -1;
  t->listed = 1;
  if (newest >= 0) tails[newest].next = fd; else oldest = fd;
  newest = fd;
}

// Ends every connection idle for idle_ms or more; returns the ms until the next is due, or -1.
static int reap(long long now) {
  while (oldest >= 0) {
    long long due = tails[oldest].last_ms + idle_ms;
    if (due > now) return (int)(due - now);
    int fd = oldest;
    unlist(fd);
    shutdown(fd, SHUT_WR);  // the peer sees the end; we close when it closes
  }
  return -1;
}

static void drop(int epfd, int fd) {
  unlist(fd);
  Tail *t = tail_for(fd);
  free(t->pending);
  t->pending = NULL;
  t->length = 0;
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  open_count--;
  if (!accepting && open_count < max_open) {
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listen_fd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev);
    accepting = 1;
  }
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
  max_open = argc > 2 ? atoi(argv[2]) : 0;
  idle_ms = argc > 3 ? atoll(argv[3]) : 0;
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
  listen_fd = lfd;
  socklen_t len = sizeof addr;
  getsockname(lfd, (struct sockaddr *)&addr, &len);
  printf("listening %d\n", ntohs(addr.sin_port));
  fflush(stdout);

  int epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event events[MAX_EVENTS];
  static char buffer[READ_SIZE];

  int timeout = -1;
  while (!stopping) {
    int n = epoll_wait(epfd, events, MAX_EVENTS, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    long long now = idle_ms ? now_ms() : 0;
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        for (int k = 0; k < 64 && accepting; k++) {
          if (max_open > 0 && open_count >= max_open) {
            epoll_ctl(epfd, EPOLL_CTL_DEL, lfd, NULL);
            accepting = 0;
            break;
          }
          int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          open_count++;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(epfd, EPOLL_CTL_ADD, c, &cev);
          touch(c, now);
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
          // A reaped connection (write side shut) is off the list: discard its input.
          if (idle_ms && !tails[fd].listed) continue;
          touch(fd, now);
          if (send_all(epfd, fd, buffer, (size_t)r) < 0) drop(epfd, fd);
        } else if (r == 0 || errno != EAGAIN) {
          drop(epfd, fd);
        }
      }
    }
    if (idle_ms) timeout = reap(now_ms());
  }
  return 0;
}
