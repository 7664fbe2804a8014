/*
 * edgespike-hostdev: the firmware's link on the host, over TCP, for fast tests.
 *
 *   edgespike-hostdev --port N [--idle-timeout S]
 *
 * Listens on 127.0.0.1:N (N = 0: the OS picks a free port) and prints
 * "listening socket://127.0.0.1:PORT" on stdout once ready (then flushes). Like a board it is
 * one device with one model, kept across connections (a device that stays powered), so it
 * serves one client (a link session) at a time, with the same link code as the boards:
 *   - a client that connects while another holds the device gets at once one Error frame
 *     ERR_BUSY (seq 0, detail: seconds the device has been held), then its connection is
 *     closed; the SDK retries until its connect timeout, then raises DeviceBusy;
 *   - a session that sends nothing for S seconds (default 60; 0: never) with no stream open
 *     is closed, so an idle client cannot hold the device for ever;
 *   - when a client goes, its open stream ends and its unfinished upload is abandoned
 *     (es_link_disconnected): a later client cannot commit it.
 * Exits on SIGTERM or SIGINT. Cycle source: CLOCK_MONOTONIC nanoseconds (CYCLES_HOST_NS).
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
#include "pb_encode.h"

#if defined(__x86_64__)
#define ES_HOST_CORE "x86_64"
#elif defined(__aarch64__)
#define ES_HOST_CORE "aarch64"
#else
#define ES_HOST_CORE "unknown"
#endif

/* Listen queue: clients beyond the one served are accepted at once and refused (busy). */
#define HOSTDEV_BACKLOG 16
/* Refused clients kept open until they close (so that the busy frame is not lost to a reset
 * when they had sent bytes already), at most this many and this long. */
#define HOSTDEV_REFUSED 8
#define HOSTDEV_REFUSED_NS 2000000000ull
#define HOSTDEV_DEFAULT_IDLE_S 60L

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

/* A refused client: read and discarded until it closes or its time is up. */
typedef struct {
    int fd;
    uint64_t until_ns;
} refused_t;

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
    fprintf(stderr, "usage: %s --port N [--idle-timeout SECONDS]   (N = 0 picks a free port; "
                    "idle timeout default %ld s, 0: never)\n", argv0, HOSTDEV_DEFAULT_IDLE_S);
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == NULL || end == s || *end != '\0' || v < lo || v > hi) {
        return 0;
    }
    *out = v;
    return 1;
}

/* The link is large (two model slots): static storage, owned by this port. */
static es_link_t g_link;
/* The busy answer, built apart from the link (which belongs to the client being served). */
static edgespike_Frame g_busy;
static uint8_t g_busy_buf[256];

/* Tell a client the device is held by another (one Error frame), and stop reading it. */
static void refuse(int fd, uint32_t held_s)
{
    conn_t c = {fd, 0};
    pb_ostream_t os = pb_ostream_from_buffer(g_busy_buf, sizeof(g_busy_buf) - ES_FRAME_CRC_BYTES);
    memset(&g_busy, 0, sizeof(g_busy));
    g_busy.which_body = edgespike_Frame_error_tag;
    g_busy.body.error.code = edgespike_ErrorCode_ERR_BUSY;
    g_busy.body.error.detail = held_s;
    snprintf(g_busy.body.error.message, sizeof(g_busy.body.error.message),
             "busy: another client holds this device (for %u s); retry when it disconnects",
             (unsigned)held_s);
    if (pb_encode(&os, edgespike_Frame_fields, &g_busy)) {
        es_frame_send(g_busy_buf, os.bytes_written, conn_write, &c);
    }
    shutdown(fd, SHUT_WR);
}

int main(int argc, char **argv)
{
    long port = -1, idle_s = HOSTDEV_DEFAULT_IDLE_S;
    int i, lfd, one = 1;
    struct sockaddr_in addr;
    socklen_t alen = sizeof(addr);
    struct sigaction sa;
    conn_t conn = {-1, 0};
    refused_t refused[HOSTDEV_REFUSED];
    es_port_t p;
    uint8_t buf[4096];
    uint64_t since_ns = 0, last_rx_ns = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            if (!parse_long(argv[++i], 0, 65535, &port)) {
                return usage(argv[0]);
            }
        } else if (strcmp(argv[i], "--idle-timeout") == 0 && i + 1 < argc) {
            if (!parse_long(argv[++i], 0, 86400L * 365, &idle_s)) {
                return usage(argv[0]);
            }
        } else {
            return usage(argv[0]);
        }
    }
    if (port < 0) {
        return usage(argv[0]);
    }
    for (i = 0; i < HOSTDEV_REFUSED; i++) {
        refused[i].fd = -1;
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
    if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(lfd, HOSTDEV_BACKLOG) != 0 ||
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
        /* Streaming work first; then wait for bytes or clients at most until the next due
         * step, the idle deadline or a refused client's deadline. */
        uint32_t wait_us = conn.fd >= 0 ? es_link_poll(&g_link) : ES_LINK_IDLE;
        uint64_t now = host_ns(NULL), wait_ns = UINT64_MAX;
        struct timeval tv;
        fd_set rfds;
        int r, maxfd = lfd;

        if (conn.fd >= 0 && conn.broken) {
            goto disconnect;
        }
        if (wait_us != ES_LINK_IDLE) {
            wait_ns = (uint64_t)wait_us * 1000u;
        }
        if (conn.fd >= 0 && idle_s > 0 && !g_link.stream.open) {
            uint64_t deadline = last_rx_ns + (uint64_t)idle_s * 1000000000u;
            if (now >= deadline) {
                fprintf(stderr, "edgespike-hostdev: session idle for %ld s: closed\n", idle_s);
                goto disconnect;
            }
            if (deadline - now < wait_ns) {
                wait_ns = deadline - now;
            }
        }
        FD_ZERO(&rfds);
        FD_SET(lfd, &rfds);
        if (conn.fd >= 0) {
            FD_SET(conn.fd, &rfds);
            maxfd = conn.fd > maxfd ? conn.fd : maxfd;
        }
        for (i = 0; i < HOSTDEV_REFUSED; i++) {
            if (refused[i].fd < 0) {
                continue;
            }
            if (now >= refused[i].until_ns) {
                close(refused[i].fd);
                refused[i].fd = -1;
                continue;
            }
            if (refused[i].until_ns - now < wait_ns) {
                wait_ns = refused[i].until_ns - now;
            }
            FD_SET(refused[i].fd, &rfds);
            maxfd = refused[i].fd > maxfd ? refused[i].fd : maxfd;
        }
        tv.tv_sec = (time_t)(wait_ns / 1000000000u);
        tv.tv_usec = (suseconds_t)(wait_ns % 1000000000u / 1000u);
        r = select(maxfd + 1, &rfds, NULL, NULL, wait_ns == UINT64_MAX ? NULL : &tv);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            perror("select");
            break;
        }
        if (r == 0) {
            continue; /* timeout: a step or a deadline is due */
        }
        for (i = 0; i < HOSTDEV_REFUSED; i++) {
            if (refused[i].fd >= 0 && FD_ISSET(refused[i].fd, &rfds) &&
                recv(refused[i].fd, buf, sizeof(buf), 0) <= 0) {
                close(refused[i].fd);
                refused[i].fd = -1;
            }
        }
        if (FD_ISSET(lfd, &rfds)) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0 && conn.fd < 0) {
                /* a new session: the device is idle, the model stays */
                conn.fd = fd;
                conn.broken = 0;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                es_link_resync(&g_link);
                since_ns = last_rx_ns = host_ns(NULL);
            } else if (fd >= 0) {
                int slot = 0;
                refuse(fd, (uint32_t)((now - since_ns) / 1000000000u));
                for (i = 0; i < HOSTDEV_REFUSED; i++) { /* a free slot, else the oldest */
                    if (refused[i].fd < 0) {
                        slot = i;
                        break;
                    }
                    if (refused[i].until_ns < refused[slot].until_ns) {
                        slot = i;
                    }
                }
                if (refused[slot].fd >= 0) {
                    close(refused[slot].fd);
                }
                refused[slot].fd = fd;
                refused[slot].until_ns = now + HOSTDEV_REFUSED_NS;
            } else if (errno != EINTR && errno != ECONNABORTED) {
                perror("accept");
                break;
            }
        }
        if (conn.fd >= 0 && FD_ISSET(conn.fd, &rfds)) {
            ssize_t n = recv(conn.fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                goto disconnect; /* peer closed: wait for the next client */
            }
            last_rx_ns = host_ns(NULL);
            es_link_rx(&g_link, buf, (size_t)n);
        }
        continue;
    disconnect:
        /* The session is over: its stream ends, its upload is abandoned; the model stays. */
        es_link_disconnected(&g_link);
        close(conn.fd);
        conn.fd = -1;
    }
    if (conn.fd >= 0) {
        close(conn.fd);
    }
    for (i = 0; i < HOSTDEV_REFUSED; i++) {
        if (refused[i].fd >= 0) {
            close(refused[i].fd);
        }
    }
    close(lfd);
    return 0;
}
