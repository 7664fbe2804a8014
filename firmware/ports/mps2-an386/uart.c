/*
 * CMSDK UART0 with an interrupt-driven receive ring and backpressure (FIELD-NOTES, "UART
 * pitfalls"): the RX handler takes at most the free space of the ring; when the ring is full
 * it masks the RX interrupt and leaves the byte in the UART, so QEMU stops reading the socket
 * and TCP holds the sender back. The main loop drains the ring, polls once, then unmasks.
 * Transmit is blocking.
 */
#include "mps2.h"

static uint8_t g_ring[ES_UART_RING];
static volatile uint32_t g_head;   /* written by the ISR (and by es_uart_idle while masked) */
static volatile uint32_t g_tail;   /* written by the main loop */
static volatile uint32_t g_masked; /* 1: RX interrupt masked because the ring was full */

void UART0RX_Handler(void);

/* Move bytes from the UART into the ring, bounded by the free space. Returns 1 if a byte is
 * left waiting in the UART because the ring is full. */
static int rx_fill(void)
{
    while (UART_STATE & UART_STATE_RXFULL) {
        uint32_t h = g_head;
        if (h - g_tail >= ES_UART_RING) {
            return 1;
        }
        g_ring[h & (ES_UART_RING - 1u)] = (uint8_t)UART_DATA;
        g_head = h + 1u;
    }
    return 0;
}

void UART0RX_Handler(void)
{
    UART_INTSTATUS = UART_INT_RX;
    if (rx_fill()) {
        NVIC_ICER0 = 1u << UART0_RX_IRQ;
        g_masked = 1;
    }
}

void es_uart_init(void)
{
    g_head = g_tail = 0;
    g_masked = 0;
    UART_BAUDDIV = ES_MPS2_CLOCK_HZ / 115200u;
    UART_CTRL = UART_CTRL_TXEN | UART_CTRL_RXEN | UART_CTRL_RXINTEN;
    /* A dummy read after enabling RX, or QEMU may stall the first byte for ~1 s. */
    (void)UART_DATA;
    UART_INTSTATUS = UART_INT_RX;
    NVIC_ISER0 = 1u << UART0_RX_IRQ;
}

void es_uart_write(void *ctx, const uint8_t *data, size_t n)
{
    size_t i;
    (void)ctx;
    for (i = 0; i < n; i++) {
        while (UART_STATE & UART_STATE_TXFULL) {
        }
        UART_DATA = data[i];
    }
}

size_t es_uart_peek(const uint8_t **p)
{
    return es_cm_ring_peek(g_ring, ES_UART_RING, g_head, g_tail, p);
}

void es_uart_consume(size_t n)
{
    g_tail += (uint32_t)n;
}

void es_uart_idle(void)
{
    if (g_masked) {
        /* The ISR stays masked here, so the ring is ours: clear, poll once, unmask. A byte
         * arriving after the clear raises the interrupt again once unmasked. */
        UART_INTSTATUS = UART_INT_RX;
        if (rx_fill()) {
            return; /* still full: the main loop drains first */
        }
        g_masked = 0;
        NVIC_ISER0 = 1u << UART0_RX_IRQ;
        return;
    }
    es_cm_sleep_if_idle(&g_head, &g_tail, &g_masked, NULL);
}

/* ---- TIMER0: a one-shot wake-up for es_uart_idle_for ------------------------------------ */
static volatile uint32_t g_timer_fired;

void TIMER0_Handler(void);
void TIMER0_Handler(void)
{
    TIMER0_INTCLEAR = 1u;
    TIMER0_CTRL = 0u;
    g_timer_fired = 1u;
}

void es_timer_init(void)
{
    TIMER0_CTRL = 0u;
    TIMER0_INTCLEAR = 1u;
    g_timer_fired = 0u;
    NVIC_ISER0 = 1u << TIMER0_IRQ;
}

void es_uart_idle_for(uint32_t us)
{
    uint64_t ticks = (uint64_t)us * (ES_MPS2_CLOCK_HZ / 1000000u);
    if (g_masked) {
        es_uart_idle(); /* the backpressure path: poll and unmask, no sleep */
        return;
    }
    if (ticks > 0xFFFFFFF0u) {
        ticks = 0xFFFFFFF0u;
    }
    if (ticks == 0u) {
        ticks = 1u;
    }
    g_timer_fired = 0u;
    TIMER0_CTRL = 0u;
    TIMER0_INTCLEAR = 1u;
    TIMER0_RELOAD = (uint32_t)ticks;
    TIMER0_VALUE = (uint32_t)ticks;
    TIMER0_CTRL = TIMER_CTRL_EN | TIMER_CTRL_IRQEN;
    es_cm_sleep_if_idle(&g_head, &g_tail, &g_masked, &g_timer_fired);
    TIMER0_CTRL = 0u;
}
