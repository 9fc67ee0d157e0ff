// The kernel side of one small write: writev of two segments (8 + 64 bytes), sendmsg of the
// same, send of the bytes joined on the stack, write of the joined bytes, on loopback TCP,
// interleaved in 30 rounds of 20,000 calls each (a thread drains the other end). Used for
// `Conn::write_now`'s join (BENCHMARKS.md, "TCP echo, Base mode (issue 20), session 8").
// usage: gcc -O2 -o /tmp/wv scripts/send_vs_writev.c -lpthread && taskset -c 0 /tmp/wv
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <time.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
static int rfd;
static void *drain(void *a) { char b[65536]; for (;;) { if (read(rfd, b, sizeof b) <= 0) return 0; } }
static double now() { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main() {
  int l = socket(AF_INET, SOCK_STREAM, 0); struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  bind(l, (void*)&a, sizeof a); listen(l, 1); socklen_t al = sizeof a; getsockname(l, (void*)&a, &al);
  int w = socket(AF_INET, SOCK_STREAM, 0); connect(w, (void*)&a, sizeof a); rfd = accept(l, 0, 0);
  int one = 1; setsockopt(w, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  pthread_t t; pthread_create(&t, 0, drain, 0);
  char pre[8] = "Server: ", data[64]; memset(data, 'x', 64);
  const int N = 20000; double tot[4] = {0}; 
  for (int round = 0; round < 30; round++) for (int m = 0; m < 4; m++) {
    double t0 = now();
    for (int i = 0; i < N; i++) {
      if (m == 0) { struct iovec v[2] = {{pre, 8}, {data, 64}}; writev(w, v, 2); }
      else if (m == 1) { struct iovec v[2] = {{pre, 8}, {data, 64}}; struct msghdr h = {.msg_iov = v, .msg_iovlen = 2}; sendmsg(w, &h, MSG_NOSIGNAL); }
      else if (m == 2) { char b[72]; memcpy(b, pre, 8); memcpy(b + 8, data, 64); send(w, b, 72, MSG_NOSIGNAL); }
      else { char b[72]; memcpy(b, pre, 8); memcpy(b + 8, data, 64); write(w, b, 72); }
    }
    tot[m] += now() - t0;
  }
  printf("ns/call: writev %.0f  sendmsg %.0f  send(joined) %.0f write(joined) %.0f\n", tot[0]/30/N, tot[1]/30/N, tot[2]/30/N, tot[3]/30/N);
}
