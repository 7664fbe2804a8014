/*
 * What every Cortex-M3/M4/M7 port shares (ARMv7-M architecture, not board specific): the
 * system control space registers, SysTick as a free-running counter extended by a wrap count,
 * the receive ring's contiguous read, and sleeping until an interrupt without a lost wake-up.
 * Header-only; included by the board headers (mps2.h, stm32f4.h).
 */
#ifndef ES_CORTEX_M_H
#define ES_CORTEX_M_H

#include <stddef.h>
#include <stdint.h>

#define ES_CM_REG32(addr) (*(volatile uint32_t *)(addr))

/* ---- System control space (ARMv7-M ARM, B3.2) ------------------------------------------- */
#define SYST_CSR ES_CM_REG32(0xE000E010u)
#define SYST_RVR ES_CM_REG32(0xE000E014u)
#define SYST_CVR ES_CM_REG32(0xE000E018u)
#define SCB_ICSR ES_CM_REG32(0xE000ED04u)
#define SCB_CPACR ES_CM_REG32(0xE000ED88u)
#define ICSR_PENDSTSET (1u << 26)

/* ---- Reset: what runs before main() ---------------------------------------------------- */
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss; /* from the board's linker script */

/* Enable the FPU (CP10, CP11) before any code may touch s-registers, copy .data from flash,
 * zero .bss. */
static inline void es_cm_start_c_runtime(void)
{
    uint32_t *src, *dst;
    SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (src = &_sidata, dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
}

/* ---- Build id: the GNU build-id note the board's linker script keeps in flash ------------ */
/* Weak: an image whose linker script has no such section links, and reports no build id. */
extern const uint8_t __es_build_id_start[] __attribute__((weak));
extern const uint8_t __es_build_id_end[] __attribute__((weak));

static inline uint32_t es_cm_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* The build id's bytes (*id) and length, or 0 when the image has none. The note: namesz,
 * descsz, type (3: NT_GNU_BUILD_ID), "GNU\0", then descsz bytes of id. */
static inline uint32_t es_cm_build_id(const uint8_t **id)
{
    const uint8_t *p = __es_build_id_start;
    *id = NULL;
    if (p == NULL || __es_build_id_end == NULL || __es_build_id_end - p < 16) {
        return 0;
    }
    const uint32_t namesz = es_cm_le32(p), descsz = es_cm_le32(p + 4), type = es_cm_le32(p + 8);
    if (namesz != 4u || type != 3u || p[12] != 'G' || p[13] != 'N' || p[14] != 'U' ||
        p[15] != 0u || descsz > (uint32_t)(__es_build_id_end - p) - 16u) {
        return 0;
    }
    *id = p + 16;
    return descsz;
}

/* ---- SysTick: 24-bit down counter, a wrap count kept by the port's SysTick ISR ---------- */
#define ES_CM_SYSTICK_RELOAD 0x00FFFFFFu

/* Start SysTick on the processor clock, interrupt on every wrap. */
static inline void es_cm_systick_start(void)
{
    SYST_RVR = ES_CM_SYSTICK_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* processor clock, interrupt on wrap, enable */
}

/* A consistent (wraps, ticks into the current wrap) pair; *wraps_isr is the ISR's count. */
static inline void es_cm_systick_read(const volatile uint32_t *wraps_isr, uint32_t *wraps,
                                      uint32_t *ticks)
{
    uint32_t w1, w2, cur, pend;
    do {
        w1 = *wraps_isr;
        cur = SYST_CVR;
        pend = SCB_ICSR & ICSR_PENDSTSET;
        w2 = *wraps_isr;
    } while (w1 != w2);
    /* The counter wrapped but its interrupt has not run yet (the count restarted near the
     * reload value): count that wrap here. */
    if (pend != 0u && cur > ES_CM_SYSTICK_RELOAD / 2u) {
        w1++;
    }
    *wraps = w1;
    *ticks = ES_CM_SYSTICK_RELOAD - cur;
}

/* ---- Receive ring (size a power of two; head written by the ISR, tail by the main loop) -- */

/* The received bytes from tail that lie contiguously in the ring (the rest, past its end,
 * come on the next call). */
static inline size_t es_cm_ring_peek(const uint8_t *ring, uint32_t size, uint32_t head,
                                     uint32_t tail, const uint8_t **p)
{
    uint32_t avail = head - tail;
    uint32_t off = tail & (size - 1u);
    if (avail > size - off) {
        avail = size - off;
    }
    *p = &ring[off];
    return avail;
}

/* Sleep until an interrupt if the ring is empty, its interrupt not masked and *woken (a
 * timer's flag; NULL: none) not set. PRIMASK closes the race between the check and the wfi
 * (a pending interrupt still ends the wfi). */
static inline void es_cm_sleep_if_idle(const volatile uint32_t *head,
                                       const volatile uint32_t *tail,
                                       const volatile uint32_t *masked,
                                       const volatile uint32_t *woken)
{
    __asm__ volatile("cpsid i" ::: "memory");
    if (*head == *tail && !*masked && (woken == NULL || !*woken)) {
        __asm__ volatile("wfi" ::: "memory");
    }
    __asm__ volatile("cpsie i" ::: "memory");
}

#endif /* ES_CORTEX_M_H */
