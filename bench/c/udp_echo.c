// The practical limit for UDP: a minimal echo server in C that receives and
// sends datagrams in batches of up to BATCH (recvmmsg/sendmmsg), each echoed
// to the address it came from.
//   udp_echo PORT   binds 127.0.0.1:PORT (0: any), prints "listening PORT"
//                   when ready; SIGTERM/SIGINT end it (their default action:
//                   there is nothing to clean up, and no handler can race the
//                   blocking receive).
// A blocking loop: recvmmsg with MSG_WAITFORONE sleeps until one datagram
// arrives, then takes whatever else is queued without waiting, so one system
// call reads a whole burst and no readiness call (epoll) is needed at all.
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#define BATCH 64
#define DATAGRAM_MAX 65536

int main(int argc, char** argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in addr = {
      .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || bind(fd, (struct sockaddr*)&addr, sizeof addr)) {
    perror("bind");
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(fd, (struct sockaddr*)&addr, &len);
  printf("listening %d\n", ntohs(addr.sin_port));
  fflush(stdout);

  static char buffers[BATCH][DATAGRAM_MAX];
  static struct sockaddr_in peers[BATCH];
  static struct iovec iovs[BATCH];
  static struct mmsghdr messages[BATCH];
  for (int i = 0; i < BATCH; i++) {
    iovs[i] = (struct iovec){.iov_base = buffers[i], .iov_len = DATAGRAM_MAX};
    messages[i].msg_hdr = (struct msghdr){.msg_name = &peers[i],
                                          .msg_namelen = sizeof peers[i],
                                          .msg_iov = &iovs[i],
                                          .msg_iovlen = 1};
  }
  for (;;) {
    int n = recvmmsg(fd, messages, BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR || errno == ENOMEM || errno == ENOBUFS) continue;
      perror("recvmmsg");
      return 1;
    }
    // Send back exactly what came in: the received length, to its sender.
    for (int i = 0; i < n; i++) iovs[i].iov_len = messages[i].msg_len;
    for (int sent = 0; sent < n;) {
      int r = sendmmsg(fd, messages + sent, n - sent, 0);
      if (r < 0 && errno == EINTR) continue;
      // A datagram the kernel refuses (r < 0) is dropped, as UDP may; the
      // batch goes on with the next.
      sent += r > 0 ? r : 1;
    }
    // recvmmsg shortened the slots used to what arrived: give them their full room again.
    for (int i = 0; i < n; i++) {
      iovs[i].iov_len = DATAGRAM_MAX;
      messages[i].msg_hdr.msg_namelen = sizeof peers[i];
    }
  }
}
