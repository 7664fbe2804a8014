/*
 * edgespike-hostdev: the firmware's link on the host, over TCP, for fast tests.
 *
 *   edgespike-hostdev --port N      listen on 127.0.0.1:N (N = 0: the OS picks a free port)
 *
 * Prints "listening socket://127.0.0.1:PORT" on stdout once ready (then flushes), serves one
 * connection at a time with the same link code as the boards, keeps the model across
 * connections (like a device that stays powered) and exits on SIGTERM or SIGINT.
 * Cycle source: CLOCK_MONOTONIC nanoseconds (CYCLES_HOST_NS).
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/select.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "es_link.h"

#if defined(__x86_64__)
#define ES_HOST_CORE "x86_64"
#elif defined(__aarch64__)
#define ES_HOST_CORE "aarch64"
#else
#define ES_HOST_CORE "unknown"
#endif

/* Signal flag: the one piece of process-wide state, as a signal handler needs. */
static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

typedef struct {
    int fd;       /* the connected socket, -1 when none */
    int broken;   /* a write failed: the peer is gone */
} conn_t;

static void conn_write(void *ctx, const uint8_t *data, size_t n)
{
    conn_t *c = (conn_t *)ctx;
    while (n > 0 && !c->broken) {
        ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            c->broken = 1;
            return;
        }
        data += (size_t)w;
        n -= (size_t)w;
    }
}

static uint64_t host_ns(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s --port N   (N = 0 picks a free port)\n", argv0);
    return 2;
}

/* The link is large (two model slots): static storage, owned by this port. */
static es_link_t g_link;

int main(int argc, char **argv)
{
    long port = -1;
    int i, lfd, one = 1;
    struct sockaddr_in addr;
    socklen_t alen = sizeof(addr);
    struct sigaction sa;
    conn_t conn = {-1, 0};
    es_port_t p;
    uint8_t buf[4096];

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end = NULL;
            port = strtol(argv[++i], &end, 10);
            if (end == NULL || *end != '\0' || port < 0 || port > 65535) {
                return usage(argv[0]);
            }
        } else {
            return usage(argv[0]);
        }
    }
    if (port < 0) {
        return usage(argv[0]);
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: accept/recv return EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) {
        perror("socket");
        return 1;
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
        perror("bind/listen");
        close(lfd);
        return 1;
    }
    printf("listening socket://127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stdout);

    memset(&p, 0, sizeof(p));
    p.write = conn_write;
    p.cycles = host_ns;
    p.cycle_source = ES_CYCLES_HOST_NS;
    p.ctx = &conn;
    p.board = "host";
    p.core = ES_HOST_CORE;
    p.clock_hz = 1000000000u; /* the counter's rate: nanoseconds */
    p.cycles_per_us = 1000u;
    es_link_init(&g_link, &p);

    while (!g_stop) {
        conn.fd = accept(lfd, NULL, NULL);
        if (conn.fd < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("accept");
            break;
        }
        conn.broken = 0;
        setsockopt(conn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        es_link_resync(&g_link);
        while (!g_stop && !conn.broken) {
            /* Streaming work first; then wait for bytes at most until the next due step. */
            uint32_t wait_us = es_link_poll(&g_link);
            struct timeval tv;
            fd_set rfds;
            int r;
            ssize_t n;
            if (conn.broken) {
                break;
            }
            FD_ZERO(&rfds);
            FD_SET(conn.fd, &rfds);
            tv.tv_sec = (time_t)(wait_us / 1000000u);
            tv.tv_usec = (suseconds_t)(wait_us % 1000000u);
            /* microsecond timeouts: the next due step, or none (sleep until bytes arrive) */
            r = select(conn.fd + 1, &rfds, NULL, NULL, wait_us == ES_LINK_IDLE ? NULL : &tv);
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                continue; /* timeout: a step is due */
            }
            n = recv(conn.fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break; /* peer closed: wait for the next connection */
            }
            es_link_rx(&g_link, buf, (size_t)n);
        }
        /* The connection is gone: an open stream ends, the device returns to idle. */
        es_link_disconnected(&g_link);
        close(conn.fd);
        conn.fd = -1;
    }
    close(lfd);
    return 0;
}
