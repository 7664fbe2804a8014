/*
 * For the link's tests: a port write function that captures what the device sends, and a link
 * initialised on a test port that writes into a capture.
 * Header-only (static), included by test_link.c and test_golden.c.
 */
#ifndef ES_TEST_CAPTURE_H
#define ES_TEST_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "es_link.h"

typedef struct {
    uint8_t bytes[65536];
    size_t n;
    int overflow; /* 1: more was sent than bytes holds (a test failure) */
} capture_t;

/* es_write_fn: append data to the capture_t in ctx. */
static void cap_write(void *ctx, const uint8_t *data, size_t n)
{
    capture_t *c = (capture_t *)ctx;
    if (c->n + n > sizeof(c->bytes)) {
        c->overflow = 1;
        return;
    }
    memcpy(c->bytes + c->n, data, n);
    c->n += n;
}

/* Initialise link on a port with no clock that captures everything it sends into cap. */
static void cap_link_init(es_link_t *link, capture_t *cap)
{
    es_port_t p;
    memset(&p, 0, sizeof(p));
    p.write = cap_write;
    p.ctx = cap;
    p.board = "test";
    p.core = "none";
    es_link_init(link, &p);
}

#endif /* ES_TEST_CAPTURE_H */
