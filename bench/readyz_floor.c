// bench/readyz_floor.c: the least a 1 Hz /readyz poll of N gateways can cost
// on this machine, to compare the probes thread with (docs/benchmarks.md,
// "Scale"): one thread, a kept connection per gateway, every request written
// at once, then the answers read through one poll(); no parsing.
//   cc -O2 -o /tmp/readyz_floor bench/readyz_floor.c
//   /usr/bin/time -f "%U user %S sys" /tmp/readyz_floor SECONDS PORT...
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <poll.h>
int main(int argc, char **argv) {
  int n = argc - 2; int secs = atoi(argv[1]);
  int *fd = calloc(n, sizeof(int)); char req[256]; char buf[8192];
  for (int i = 0; i < n; i++) {
    fd[i] = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[i + 2]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd[i], (void*)&a, sizeof a)) { perror("connect"); return 1; }
    int one = 1; setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int len = snprintf(req, sizeof req, "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n");
  long bad = 0;
  for (int s = 0; s < secs; s++) {
    for (int i = 0; i < n; i++) if (write(fd[i], req, len) != len) bad++;
    struct pollfd *p = calloc(n, sizeof *p);
    for (int i = 0; i < n; i++) { p[i].fd = fd[i]; p[i].events = POLLIN; }
    int left = n;
    while (left > 0) {
      if (poll(p, n, 2000) <= 0) { bad++; break; }
      for (int i = 0; i < n; i++) if (p[i].revents) {
        ssize_t r = read(fd[i], buf, sizeof buf); if (r <= 0) bad++;
        // one read holds the whole small answer here
        p[i].fd = -1; left--;
      }
    }
    free(p);
    sleep(1);
  }
  fprintf(stderr, "bad %ld\n", bad);
  return 0;
}
