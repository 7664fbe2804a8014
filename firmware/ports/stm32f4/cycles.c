/* The cycle counter: the DWT's CYCCNT on silicon, SysTick where CYCCNT does not count.
 *
 * QEMU emulates no DWT (CYCCNT reads 0), so es_cycles_init enables CYCCNT, runs a few
 * instructions and looks: if it moved, the DWT is the source (ES_CYCLES_DWT: core cycles,
 * extended to 64 bits; SysTick's wrap interrupt, every 2^24 cycles = 0.1 s at 168 MHz, reads it
 * too, so no 2^32 wrap (25 s) is missed while the device idles). If not, SysTick counts core
 * clock ticks (24-bit reload, a wrap count in the ISR) and a read returns them as ns of virtual
 * time: under -icount shift=0 one instruction is 1 ns, so that is an instruction count
 * (ES_CYCLES_QEMU_ICOUNT). */
#include "stm32f4.h"

static volatile uint32_t g_wraps; /* written only by the SysTick ISR */
static int g_use_dwt;
static uint32_t g_num, g_den; /* ns per tick = g_num / g_den (1000 / MHz, reduced) */
static uint32_t g_dwt_last;
static uint64_t g_dwt_high;

/* The DWT count extended to 64 bits; callers keep interrupts off (the ISR calls it too). */
static uint64_t dwt_extend(void)
{
    uint32_t now = DWT_CYCCNT;
    if (now < g_dwt_last) {
        g_dwt_high += 1ull << 32;
    }
    g_dwt_last = now;
    return g_dwt_high + now;
}

void SysTick_Handler(void);
void SysTick_Handler(void)
{
    if (g_use_dwt) {
        (void)dwt_extend();
    } else {
        g_wraps++;
    }
}

int es_cycles_init(uint32_t sysclk_hz)
{
    uint32_t before, i;
    uint32_t a, b;
    g_num = 1000u;
    g_den = sysclk_hz / 1000000u;
    for (a = g_num, b = g_den; b != 0u;) { /* reduce by the gcd: 1000/168 = 125/21 */
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    g_num /= a;
    g_den /= a;
    SCB_DEMCR |= DEMCR_TRCENA;
    DWT_CYCCNT = 0u;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    before = DWT_CYCCNT;
    for (i = 0; i < 16u; i++) {
        __asm__ volatile("nop");
    }
    g_use_dwt = (DWT_CYCCNT != before);
    g_dwt_last = DWT_CYCCNT;
    g_dwt_high = 0;
    g_wraps = 0;
    es_cm_systick_start();
    return g_use_dwt;
}

uint64_t es_cycles_read(void *ctx)
{
    (void)ctx;
    if (g_use_dwt) {
        uint32_t primask;
        uint64_t v;
        __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
        v = dwt_extend();
        __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
        return v;
    }
    {
        /* ns = (wraps * 2^24 + lo) * num / den, with two 32-bit divisions (the M4's UDIV)
         * instead of libgcc's 64-bit one (~100 instructions a reading): exact while
         * wraps * num < 2^32 (40 days at 168 MHz) and num + den < 256 (125 + 21 here). */
        uint32_t w, lo, q, r;
        es_cm_systick_read(&g_wraps, &w, &lo);
        if (g_num + g_den >= 256u || w >= 0xFFFFFFFFu / g_num) {
            return ((((uint64_t)w << 24) + lo) * g_num) / g_den;
        }
        q = (w * g_num) / g_den;
        r = (w * g_num) % g_den;
        return ((uint64_t)q << 24) + ((r << 24) + lo * g_num) / g_den;
    }
}
