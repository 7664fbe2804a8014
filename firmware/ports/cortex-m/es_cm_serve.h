/*
 * The link's service loop, shared by the Cortex-M ports: received bytes go to the link, UART
 * overruns are reported to it, an open stream runs its due steps between received chunks (one
 * per pass, es_link_poll), and the core sleeps until the next byte or the next due step.
 * The port provides the es_uart_* functions (declared in its board header, included first).
 * Header-only; included by each port's main.c.
 */
#ifndef ES_CM_SERVE_H
#define ES_CM_SERVE_H

#include "es_link.h"

/* Serve the link forever. overruns: bytes the UART lost since the last call (NULL: the port
 * has no such count). */
static inline void es_cm_serve_forever(es_link_t *link, uint32_t (*overruns)(void))
{
    for (;;) {
        const uint8_t *data;
        uint32_t wait_us, lost;
        size_t n = es_uart_peek(&data);
        if (n > 0) {
            es_link_rx(link, data, n);
            es_uart_consume(n);
        }
        lost = overruns != NULL ? overruns() : 0u;
        if (lost != 0u) {
            es_link_note_rx_overrun(link, lost);
        }
        wait_us = es_link_poll(link);
        if (n == 0 && wait_us != 0u) {
            if (wait_us == ES_LINK_IDLE) {
                es_uart_idle();
            } else {
                es_uart_idle_for(wait_us);
            }
        }
    }
}

#endif
