/* SysTick as a free-running 64-bit tick counter: 24-bit reload, a wrap count in the ISR. */
#include "mps2.h"

#define RELOAD 0x00FFFFFFu

static volatile uint32_t g_wraps; /* written only by the SysTick ISR */

void SysTick_Handler(void);
void SysTick_Handler(void)
{
    g_wraps++;
}

void es_systick_init(void)
{
    g_wraps = 0;
    SYST_RVR = RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* processor clock, interrupt on wrap, enable */
}

uint64_t es_systick_ticks(void)
{
    uint32_t w1, w2, cur, pend;
    do {
        w1 = g_wraps;
        cur = SYST_CVR;
        pend = SCB_ICSR & ICSR_PENDSTSET;
        w2 = g_wraps;
    } while (w1 != w2);
    /* The counter wrapped but its interrupt has not run yet (the count restarted near the
     * reload value): count that wrap here. */
    if (pend != 0u && cur > RELOAD / 2u) {
        w1++;
    }
    return ((uint64_t)w1 << 24) + (uint64_t)(RELOAD - cur);
}

uint64_t es_systick_cycles(void *ctx)
{
    (void)ctx;
    return es_systick_ticks() * ES_MPS2_INSNS_PER_TICK;
}
