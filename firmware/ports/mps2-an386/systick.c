/* SysTick as a free-running 64-bit tick counter: 24-bit reload, a wrap count in the ISR. */
#include "mps2.h"

static volatile uint32_t g_wraps; /* written only by the SysTick ISR */

void SysTick_Handler(void);
void SysTick_Handler(void)
{
    g_wraps++;
}

void es_systick_init(void)
{
    g_wraps = 0;
    es_cm_systick_start();
}

uint64_t es_systick_ticks(void)
{
    uint32_t wraps, ticks;
    es_cm_systick_read(&g_wraps, &wraps, &ticks);
    return ((uint64_t)wraps << 24) + (uint64_t)ticks;
}

uint64_t es_systick_cycles(void *ctx)
{
    (void)ctx;
    return es_systick_ticks() * ES_MPS2_INSNS_PER_TICK;
}
