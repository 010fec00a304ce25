// The UDP load generator of the bench harness, in C so that it can drive the
// C recvmmsg echo server as hard as that server can go.
//   udp_load --port P [--flows F] [--window W] [--size S] [--warmup SEC]
//            [--duration SEC] [--loss-timeout-ms MS]
// F flows, each its own socket connected to 127.0.0.1:P, each keeping W
// datagrams of S bytes in flight: every echo is checked and answered with a
// new datagram. A datagram not echoed within the loss timeout is counted lost
// and replaced, so a loss never stalls a flow.
//
// Each datagram carries its flow, its slot in the flow's window and a
// sequence number (unique per flow), then bytes derived from that number. An
// echo of the wrong length, flow or content, or of a datagram never sent, is
// an error, and so is a second echo of one datagram (a duplicate); the first
// echo of a datagram already given up as lost is "stale" (late).
//
// Talks to the harness like bench/loadgen.mjs, in JSON lines on stdout:
// {"event":"measure-start"} after the warm-up, {"event":"measure-end"}, then
// {"event":"result",...}: units (echoes verified in the measured window),
// seconds, errors, sent, losses, stale (all in the window), and latencyBuckets:
// [[µs, count], ...], round trips by the middle of log-sized buckets.
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define DATAGRAM_MAX 65536
#define HEADER 16            // flow (4 bytes), slot (4), sequence (8)
#define CHECK_NS 10000000LL  // look for lost datagrams every 10 ms
#define ERRORS_SHOWN 5

// Latency histogram: exact below 2 * SUB µs, then SUB buckets per power of
// two (each at most 1/SUB = 6% wide); longer than 60 s counts as 60 s.
#define SUB_BITS 4
#define SUB (1 << SUB_BITS)
#define BUCKETS (2 * SUB + 26 * SUB)  // 60 s is below 2^26 µs
#define LATENCY_MAX_US 60000000ULL

typedef struct {
  uint64_t seq;
  long long sent_ns;
} Slot;

// Sequence numbers, ascending: those of a flow's datagrams given up as lost
// and not echoed since (few: losses are rare by design).
typedef struct {
  uint64_t* seqs;
  size_t count, capacity;
} SeqSet;

typedef struct {
  int fd;
  Slot* slots;
  uint64_t next_seq;
  SeqSet given_up;
} Flow;

static struct {
  int port, flows, window, size, loss_timeout_ms;
  double warmup, duration;
} config = {.flows = 32, .window = 4, .size = 64, .loss_timeout_ms = 1000, .duration = 2};

static Flow* flows;
static int measuring;
static uint64_t echoed, sent, losses, stale, errors;
static uint64_t histogram[BUCKETS];

// Echoes read and datagrams to send, a batch at a time (the sockets are
// connected: no addresses).
static char in[BATCH][DATAGRAM_MAX], out[BATCH][DATAGRAM_MAX];
static struct iovec in_iov[BATCH], out_iov[BATCH];
static struct mmsghdr in_msgs[BATCH], out_msgs[BATCH];

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int bucket_of(uint64_t us) {
  if (us > LATENCY_MAX_US) us = LATENCY_MAX_US;
  if (us < 2 * SUB) return (int)us;
  int shift = 63 - __builtin_clzll(us) - SUB_BITS;  // us >> shift is in [SUB, 2 * SUB)
  return 2 * SUB + (shift - 1) * SUB + (int)((us >> shift) - SUB);
}

// The middle of bucket b, in µs.
static uint64_t bucket_middle(int b) {
  if (b < 2 * SUB) return (uint64_t)b;
  int shift = (b - 2 * SUB) / SUB + 1;
  uint64_t low = (uint64_t)((b - 2 * SUB) % SUB + SUB) << shift;
  return low + ((1ULL << shift) >> 1);
}

static void seqset_add(SeqSet* set, uint64_t seq) {
  if (set->count == set->capacity) {
    set->capacity = set->capacity ? set->capacity * 2 : 16;
    set->seqs = realloc(set->seqs, set->capacity * sizeof *set->seqs);
  }
  size_t i = set->count++;
  for (; i > 0 && set->seqs[i - 1] > seq; i--) set->seqs[i] = set->seqs[i - 1];
  set->seqs[i] = seq;
}

// Removes seq from the set; returns whether it was there.
static int seqset_take(SeqSet* set, uint64_t seq) {
  size_t low = 0, high = set->count;
  while (low < high) {
    size_t middle = (low + high) / 2;
    if (set->seqs[middle] < seq)
      low = middle + 1;
    else
      high = middle;
  }
  if (low == set->count || set->seqs[low] != seq) return 0;
  memmove(set->seqs + low, set->seqs + low + 1, (set->count - low - 1) * sizeof *set->seqs);
  set->count--;
  return 1;
}

static uint8_t filler(uint64_t seq, int k) { return (uint8_t)(seq * 131 + (uint64_t)k * 7); }

// Counts an error; the first few are described on stderr (with the
// datagram's sequence number when known: they start at 1).
static void error_seen(int flow, const char* what, uint64_t seq) {
  if (errors++ >= ERRORS_SHOWN) return;
  if (seq) {
    fprintf(stderr, "udp_load: flow %d: %s (sequence %llu)\n", flow, what, (unsigned long long)seq);
  } else {
    fprintf(stderr, "udp_load: flow %d: %s\n", flow, what);
  }
}

// Gives slot s of flow f a new datagram, written into `datagram`, sent `now`.
static void refill(int f, int s, char* datagram, long long now) {
  Flow* flow = &flows[f];
  uint64_t seq = flow->next_seq++;
  uint32_t flow_id = (uint32_t)f, slot_id = (uint32_t)s;
  flow->slots[s] = (Slot){.seq = seq, .sent_ns = now};
  memcpy(datagram, &flow_id, 4);
  memcpy(datagram + 4, &slot_id, 4);
  memcpy(datagram + 8, &seq, 8);
  for (int k = HEADER; k < config.size; k++) datagram[k] = (char)filler(seq, k);
  if (measuring) sent++;
}

// Sends the first `count` datagrams of `out` on flow f's socket. A refused
// send (the server gone: ECONNREFUSED) is an error; the datagram is lost.
static void send_batch(int f, int count) {
  for (int done = 0; done < count;) {
    int r = sendmmsg(flows[f].fd, out_msgs + done, count - done, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      error_seen(f, strerror(errno), 0);
      r = 1;
    }
    done += r;
  }
}

// Checks one echo of flow f; returns its slot when it is the datagram that
// slot waits for, else -1.
static int check(int f, const char* data, size_t length, int truncated) {
  uint32_t flow_id, slot;
  uint64_t seq;
  if (truncated || length != (size_t)config.size) {
    error_seen(f, "echo of the wrong length", 0);
    return -1;
  }
  memcpy(&flow_id, data, 4);
  memcpy(&slot, data + 4, 4);
  memcpy(&seq, data + 8, 8);
  if (flow_id != (uint32_t)f || slot >= (uint32_t)config.window || seq >= flows[f].next_seq) {
    error_seen(f, "echo of a datagram this flow never sent", seq);
    return -1;
  }
  for (int k = HEADER; k < config.size; k++) {
    if ((uint8_t)data[k] != filler(seq, k)) {
      error_seen(f, "echo with other bytes than were sent", seq);
      return -1;
    }
  }
  if (flows[f].slots[slot].seq != seq) {
    if (!seqset_take(&flows[f].given_up, seq)) {
      error_seen(f, "a second echo of one datagram", seq);
    } else if (measuring) {
      stale++;
    }
    return -1;
  }
  return (int)slot;
}

// Reads up to BATCH echoes of flow f and answers each with a new datagram.
static void drain(int f) {
  int n = recvmmsg(flows[f].fd, in_msgs, BATCH, MSG_DONTWAIT, NULL);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) error_seen(f, strerror(errno), 0);
    return;
  }
  long long now = now_ns();
  int answers = 0;
  for (int i = 0; i < n; i++) {
    int truncated = (in_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    int slot = check(f, in[i], in_msgs[i].msg_len, truncated);
    if (slot < 0) continue;
    if (measuring) {
      echoed++;
      long long us = (now - flows[f].slots[slot].sent_ns) / 1000;
      histogram[bucket_of(us < 1 ? 1 : (uint64_t)us)]++;
    }
    refill(f, slot, out[answers++], now);
  }
  if (answers) send_batch(f, answers);
}

// Gives up on datagrams unanswered for the loss timeout; new ones take their place.
static void expire(long long now) {
  long long limit = config.loss_timeout_ms * 1000000LL;
  for (int f = 0; f < config.flows; f++) {
    for (int s = 0; s < config.window; s++) {
      if (now - flows[f].slots[s].sent_ns < limit) continue;
      seqset_add(&flows[f].given_up, flows[f].slots[s].seq);
      if (measuring) losses++;
      refill(f, s, out[0], now);
      send_batch(f, 1);
    }
  }
}

static void say(const char* event) {
  printf("{\"event\":\"%s\"}\n", event);
  fflush(stdout);
}

static void usage(const char* problem) {
  fprintf(stderr,
          "udp_load: %s\nusage: udp_load --port P [--flows F] [--window W] [--size S] "
          "[--warmup SEC] [--duration SEC] [--loss-timeout-ms MS]\n",
          problem);
  exit(2);
}

// The value of option `name`: a whole number from min to max.
static int whole(const char* text, const char* name, int min, int max) {
  char* end;
  errno = 0;
  long n = strtol(text, &end, 10);
  if (errno || *end || end == text || n < min || n > max) {
    char problem[160];
    snprintf(problem, sizeof problem, "--%s must be a whole number from %d to %d, got \"%s\"", name,
             min, max, text);
    usage(problem);
  }
  return (int)n;
}

// The value of option `name`: seconds, from min to an hour.
static double seconds(const char* text, const char* name, double min) {
  char* end;
  double n = strtod(text, &end);
  if (*end || end == text || !(n >= min && n <= 3600)) {
    char problem[160];
    snprintf(problem, sizeof problem, "--%s must be seconds from %g to 3600, got \"%s\"", name, min,
             text);
    usage(problem);
  }
  return n;
}

static void parse(int argc, char** argv) {
  static const struct option options[] = {{"port", required_argument, 0, 'p'},
                                          {"flows", required_argument, 0, 'f'},
                                          {"window", required_argument, 0, 'w'},
                                          {"size", required_argument, 0, 's'},
                                          {"warmup", required_argument, 0, 'u'},
                                          {"duration", required_argument, 0, 'd'},
                                          {"loss-timeout-ms", required_argument, 0, 'l'},
                                          {0, 0, 0, 0}};
  int option;
  opterr = 0;
  while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (option) {
      case 'p':
        config.port = whole(optarg, "port", 1, 65535);
        break;
      case 'f':
        config.flows = whole(optarg, "flows", 1, 10000);
        break;
      case 'w':
        config.window = whole(optarg, "window", 1, 4096);
        break;
      case 's':
        config.size = whole(optarg, "size", HEADER, 65507);
        break;
      case 'u':
        config.warmup = seconds(optarg, "warmup", 0);
        break;
      case 'd':
        config.duration = seconds(optarg, "duration", 0.001);
        break;
      case 'l':
        config.loss_timeout_ms = whole(optarg, "loss-timeout-ms", 1, 60000);
        break;
      default:
        usage("unknown option or missing value");
    }
  }
  if (optind < argc) usage("unexpected argument");
  if (!config.port) usage("--port is required");
}

static void report(double measured_seconds) {
  printf(
      "{\"event\":\"result\",\"units\":%llu,\"seconds\":%.6f,\"errors\":%llu,\"sent\":%llu,"
      "\"losses\":%llu,\"stale\":%llu,\"latencyBuckets\":[",
      (unsigned long long)echoed, measured_seconds, (unsigned long long)errors,
      (unsigned long long)sent, (unsigned long long)losses, (unsigned long long)stale);
  const char* comma = "";
  for (int b = 0; b < BUCKETS; b++) {
    if (!histogram[b]) continue;
    printf("%s[%llu,%llu]", comma, (unsigned long long)bucket_middle(b),
           (unsigned long long)histogram[b]);
    comma = ",";
  }
  printf("]}\n");
  fflush(stdout);
}

int main(int argc, char** argv) {
  parse(argc, argv);
  for (int i = 0; i < BATCH; i++) {
    in_iov[i] = (struct iovec){.iov_base = in[i], .iov_len = DATAGRAM_MAX};
    in_msgs[i].msg_hdr = (struct msghdr){.msg_iov = &in_iov[i], .msg_iovlen = 1};
    out_iov[i] = (struct iovec){.iov_base = out[i], .iov_len = (size_t)config.size};
    out_msgs[i].msg_hdr = (struct msghdr){.msg_iov = &out_iov[i], .msg_iovlen = 1};
  }
  flows = calloc((size_t)config.flows, sizeof *flows);
  struct epoll_event* events = calloc((size_t)config.flows, sizeof *events);
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  struct sockaddr_in server = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)config.port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  for (int f = 0; f < config.flows; f++) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr*)&server, sizeof server)) {
      perror("udp_load: socket");
      return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)f};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    flows[f] =
        (Flow){.fd = fd, .slots = calloc((size_t)config.window, sizeof(Slot)), .next_seq = 1};
  }

  long long start = now_ns();
  long long measure_from = start + (long long)(config.warmup * 1e9);
  long long measure_until = measure_from + (long long)(config.duration * 1e9);
  for (int f = 0; f < config.flows; f++) {
    for (int s = 0; s < config.window; s++) {
      refill(f, s, out[0], start);
      send_batch(f, 1);
    }
  }

  long long now = start, next_check = start + CHECK_NS, measured_from = 0;
  while (now < measure_until) {
    if (!measuring && now >= measure_from) {
      measuring = 1;
      measured_from = now;
      say("measure-start");
    }
    long long next = measuring ? measure_until : measure_from;
    if (next_check < next) next = next_check;
    int timeout_ms = next > now ? (int)((next - now + 999999) / 1000000) : 0;
    int n = epoll_wait(epfd, events, config.flows, timeout_ms);
    if (n < 0 && errno != EINTR) {
      perror("udp_load: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) drain((int)events[i].data.u32);
    now = now_ns();
    if (now >= next_check) {
      expire(now);
      next_check = now + CHECK_NS;
    }
  }
  if (!measuring) {  // the warm-up outlasted the whole run: an empty window
    measured_from = now;
    say("measure-start");
  }
  measuring = 0;
  say("measure-end");
  report((double)(now - measured_from) / 1e9);
  return 0;
}
