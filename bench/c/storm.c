// A connection storm: N clients connect one after another, each with a
// blocking connect() issued as soon as the previous one returned, and each
// connection is kept open until all N are established (a server that drops
// or resets one is seen: the rest are checked with a poll for a hang-up).
//   storm --port PORT [--host 127.0.0.1] [--count 10000] [--wait 1]
// With --wait 1 it prints a "baseline" event and waits for a line on stdin
// before it starts (the harness lets the server settle meanwhile). It prints
// "measure-start" and "measure-end" around the storm (the harness reads the
// server's CPU time there), then the "result" event: seconds to establish
// all N, connects per second, the slowest connect in ms, how many took over
// 900 ms (a SYN retransmitted: the kernel dropped the first, its accept queue
// full), how many failed, and the growth of the kernel's ListenOverflows and
// ListenDrops counters (TcpExt in /proc/net/netstat; the server shares this
// network namespace, so they count its drops, and anyone else's meanwhile).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RETRANSMIT_MS 900.0

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// TcpExt's NAME from /proc/net/netstat (a header line of names, then a line
// of values); -1 where there is none (not Linux).
static long long tcp_ext(const char *name) {
  FILE *f = fopen("/proc/net/netstat", "r");
  if (!f) return -1;
  char names[8192], values[8192];
  long long found = -1;
  while (found < 0 && fgets(names, sizeof names, f) && fgets(values, sizeof values, f)) {
    if (strncmp(names, "TcpExt:", 7) != 0) continue;
    char *name_save, *value_save;
    char *n = strtok_r(names, " \n", &name_save);
    char *v = strtok_r(values, " \n", &value_save);
    while (n && v) {
      if (strcmp(n, name) == 0) found = atoll(v);
      n = strtok_r(NULL, " \n", &name_save);
      v = strtok_r(NULL, " \n", &value_save);
    }
  }
  fclose(f);
  return found;
}

static void usage(void) {
  fprintf(stderr, "usage: storm --port PORT [--host 127.0.0.1] [--count 10000] [--wait 1]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  long port = -1, count = 10000, wait = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    char *end;
    long value = strtol(argv[i + 1], &end, 10);
    if (strcmp(argv[i], "--host") == 0) {
      host = argv[i + 1];
      continue;
    }
    if (*end || value < 0) usage();
    if (strcmp(argv[i], "--port") == 0) port = value;
    else if (strcmp(argv[i], "--count") == 0) count = value;
    else if (strcmp(argv[i], "--wait") == 0) wait = value;
    else usage();
  }
  if (argc % 2 == 0 || port <= 0 || port > 65535 || count < 1) usage();
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) usage();
  // One descriptor per connection, all held at once.
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < (rlim_t)count + 64) {
    limit.rlim_cur = limit.rlim_max < (rlim_t)count + 64 ? limit.rlim_max : (rlim_t)count + 64;
    setrlimit(RLIMIT_NOFILE, &limit);
  }

  int *fds = calloc((size_t)count, sizeof *fds);
  if (!fds) return 1;
  if (wait) {
    char line[64];
    printf("{\"event\":\"baseline\"}\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) return 1;
  }
  printf("{\"event\":\"measure-start\"}\n");
  fflush(stdout);
  long long overflows = tcp_ext("ListenOverflows"), drops = tcp_ext("ListenDrops");
  long failed = 0, slow = 0, established = 0;
  int first_error = 0;
  double slowest = 0;
  double start = now_ms();
  for (long i = 0; i < count; i++) {
    double began = now_ms();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
      close(fd);
      fd = -1;
    }
    double took = now_ms() - began;
    fds[i] = fd;
    if (fd < 0) {
      failed++;
      if (!first_error) first_error = errno;
      continue;
    }
    established++;
    if (took > slowest) slowest = took;
    if (took > RETRANSMIT_MS) slow++;
  }
  double seconds = (now_ms() - start) / 1e3;
  long long overflows_after = tcp_ext("ListenOverflows"), drops_after = tcp_ext("ListenDrops");
  printf("{\"event\":\"measure-end\"}\n");
  fflush(stdout);
  // Still open: nothing reset or closed by the server (a hang-up or error
  // would be pending; a server's bytes would be readable but are none here).
  long lost = 0;
  for (long i = 0; i < count; i++) {
    if (fds[i] < 0) continue;
    struct pollfd p = {.fd = fds[i], .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) > 0) lost++;
    close(fds[i]);
  }
  printf("{\"event\":\"result\",\"units\":%ld,\"errors\":%ld,"
         "\"conns\":%ld,\"established\":%ld,\"failed\":%ld,\"lost\":%ld,"
         "\"seconds\":%.6f,\"connectsPerSec\":%.1f,\"maxConnectMs\":%.3f,\"retransmitted\":%ld,"
         "\"listenOverflows\":%lld,\"listenDrops\":%lld,\"firstError\":\"%s\"}\n",
         established, failed + lost, count, established, failed, lost, seconds, established / (seconds > 0 ? seconds : 1e-9),
         slowest, slow, overflows < 0 ? -1 : overflows_after - overflows,
         drops < 0 ? -1 : drops_after - drops, first_error ? strerror(first_error) : "");
  free(fds);
  return 0;
}
