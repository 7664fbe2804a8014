/*
 * The link USART (USART1 by default, USART2 with -DES_STM32_USART=2) with an interrupt-driven
 * receive ring and backpressure (FIELD-NOTES, "UART pitfalls"): the RX handler takes at most
 * the free space of the ring; when the ring is full it masks the USART interrupt in the NVIC
 * and leaves the byte in DR. Under QEMU that stops it reading the socket, so TCP holds the
 * sender back and nothing is lost. On a real UART there is no flow control: a byte that comes
 * while DR is still full is an overrun (SR.ORE), counted and reported to the link (Stats).
 * The main loop drains the ring, polls once, then unmasks. Transmit is polled (blocking).
 *
 * TIM2 is the one-shot wake-up for es_uart_idle_for (streaming's paced steps).
 */
#include "stm32f4.h"

static uint8_t g_ring[ES_UART_RING];
static volatile uint32_t g_head;   /* written by the ISR (and by es_uart_idle while masked) */
static volatile uint32_t g_tail;   /* written by the main loop */
static volatile uint32_t g_masked; /* 1: RX interrupt masked because the ring was full */
static volatile uint32_t g_overruns;

/* Move bytes from DR into the ring, bounded by the free space. Returns 1 if a byte is left
 * waiting in DR because the ring is full. */
static int rx_fill(void)
{
    for (;;) {
        uint32_t sr = USART_SR;
        uint32_t h;
        if (!(sr & USART_SR_RXNE)) {
            if (sr & USART_SR_ORE) {
                g_overruns++;
                (void)USART_DR; /* SR then DR clears ORE */
            }
            return 0;
        }
        h = g_head;
        if (h - g_tail >= ES_UART_RING) {
            return 1; /* ORE, if set, is counted when this byte is read */
        }
        if (sr & USART_SR_ORE) {
            g_overruns++; /* bytes were lost before this one; the DR read clears ORE */
        }
        g_ring[h & (ES_UART_RING - 1u)] = (uint8_t)USART_DR;
        g_head = h + 1u;
    }
}

#if ES_STM32_USART == 1
void USART1_IRQHandler(void);
void USART1_IRQHandler(void)
#else
void USART2_IRQHandler(void);
void USART2_IRQHandler(void)
#endif
{
    if (rx_fill()) {
        es_nvic_disable(USART_IRQ);
        g_masked = 1;
    }
}

void es_uart_init(uint32_t usart_hz)
{
    g_head = g_tail = 0;
    g_masked = 0;
    g_overruns = 0;
    USART_CR1 = 0u;
    USART_CR2 = 0u; /* 1 stop bit */
    USART_CR3 = 0u; /* no flow control */
    USART_BRR = (usart_hz + ES_STM32_BAUD / 2u) / ES_STM32_BAUD; /* OVER8 = 0 */
    /* 8N1. QEMU drops bytes that arrive before UE|RE are set: the host waits for the banner
     * main() sends once this returns. */
    USART_CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    es_nvic_enable(USART_IRQ);
}

uint32_t es_uart_overruns(void)
{
    uint32_t n;
    __asm__ volatile("cpsid i" ::: "memory");
    n = g_overruns;
    g_overruns = 0;
    __asm__ volatile("cpsie i" ::: "memory");
    return n;
}

void es_uart_write(void *ctx, const uint8_t *data, size_t n)
{
    size_t i;
    (void)ctx;
    for (i = 0; i < n; i++) {
        while (!(USART_SR & USART_SR_TXE)) {
        }
        USART_DR = data[i];
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
        /* The ISR stays masked here, so the ring is ours: poll once, then unmask. RXNE keeps
         * the (level) interrupt pending, so a byte still in DR is taken once unmasked. */
        if (rx_fill()) {
            return; /* still full: the main loop drains first */
        }
        g_masked = 0;
        es_nvic_enable(USART_IRQ);
        return;
    }
    es_cm_sleep_if_idle(&g_head, &g_tail, &g_masked, NULL);
}

/* ---- TIM2: a one-shot wake-up for es_uart_idle_for -----------------------------------------
 *
 * On silicon: TIM2 counts microseconds (prescaler from TIM2's clock), CNT = 0, ARR = the wait,
 * an update interrupt ends the sleep.
 *
 * Under QEMU 7.2 (netduinoplus2) the TIM2 model schedules its alarm at "now + the absolute
 * deadline" (hw/timer/stm32f2xx_timer.c, stm32f2xx_timer_set_alarm: hit_time counts ticks
 * since the virtual clock's origin, and timer_mod adds the current time again), so a plain
 * one-shot fires later and later as the machine runs (paced streams then report stalls). The
 * model's deadline is ARR - CNT + now_ticks; writing CNT = ARR + now_ticks - wait makes it
 * exactly the wait. now_ticks is virtual ns / tick, which the port knows: under -icount the
 * SysTick fallback counts virtual ns (since es_cycles_init, a few microseconds after the
 * clock's origin, so wake-ups come at most that much late). Ticks of 10 us keep now_ticks in
 * 32 bits for 11 hours; past that (and for waits under one tick) the port polls instead. */
#define EMU_TICK_US 10u
#define EMU_ARR 0xFFFFu

static volatile uint32_t g_timer_fired;
static int g_timer_emulated;

void TIM2_IRQHandler(void);
void TIM2_IRQHandler(void)
{
    TIM2_CR1 = 0u;
    TIM2_SR = 0u;
    g_timer_fired = 1u;
}

void es_timer_init(uint32_t tim_hz, int emulated)
{
    g_timer_emulated = emulated;
    TIM2_CR1 = 0u;
    TIM2_DIER = 0u;
    /* one count per microsecond (silicon) or per EMU_TICK_US (QEMU) */
    TIM2_PSC = tim_hz / (emulated ? 1000000u / EMU_TICK_US : 1000000u) - 1u;
    TIM2_ARR = 0xFFFFFFFFu;
    TIM2_EGR = TIM_EGR_UG; /* load the prescaler now (it is buffered until an update) */
    TIM2_SR = 0u;
    TIM2_DIER = TIM_DIER_UIE;
    g_timer_fired = 0u;
    es_nvic_enable(TIM2_IRQ);
}

void es_uart_idle_for(uint32_t us)
{
    if (g_masked) {
        es_uart_idle(); /* the backpressure path: poll and unmask, no sleep */
        return;
    }
    g_timer_fired = 0u;
    TIM2_CR1 = 0u;
    TIM2_SR = 0u;
    if (g_timer_emulated) {
        uint64_t now = es_cycles_read(0) / (1000u * EMU_TICK_US); /* ns -> ticks */
        uint32_t wait = us / EMU_TICK_US; /* rounded down: an early wake-up only polls again */
        if (wait == 0u || now >= 0xFFFFFFFFu - EMU_ARR) {
            return; /* poll */
        }
        if (wait > EMU_ARR) {
            wait = EMU_ARR;
        }
        TIM2_ARR = EMU_ARR;
        TIM2_CNT = EMU_ARR + (uint32_t)now - wait; /* sets the model's alarm */
    } else {
        if (us == 0u) {
            return;
        }
        TIM2_CNT = 0u;
        TIM2_ARR = us;
    }
    TIM2_CR1 = TIM_CR1_CEN;
    es_cm_sleep_if_idle(&g_head, &g_tail, &g_masked, &g_timer_fired);
    TIM2_CR1 = 0u;
}
