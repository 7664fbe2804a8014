/*
 * EdgeSpike core: the kernel path chosen at compile time, and the SIMD instructions the DSP
 * path uses (ARMv7E-M / ARMv8-M Mainline with the DSP extension: Cortex-M4, M7, M33).
 *
 * ES_DSP is 1 when the compiler targets a core with the DSP extension (__ARM_FEATURE_DSP) and
 * ES_PLAIN_KERNELS is not defined; every kernel then takes its DSP path. Otherwise the portable
 * C path is built (the host library, Cortex-M0/M3, or a DSP core built with
 * -DES_PLAIN_KERNELS=1 to test the plain path on it). Both paths give the same results, bit
 * for bit (tests/test_parity_*.py run both).
 *
 * The helpers are inline assembly in the style of CMSIS-Core, because GCC neither folds a
 * rotation into SXTAB16's operand nor emits PKHBT from C.
 */
#ifndef ES_DSP_H
#define ES_DSP_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(ES_PLAIN_KERNELS)
#define ES_DSP 1
#else
#define ES_DSP 0
#endif

/* Unaligned little-endian loads. Cortex-M3 and above and x86 load unaligned words in one
 * instruction (memcpy compiles to it); elsewhere (Cortex-M0) memcpy reads bytes. */
static inline __attribute__((always_inline)) uint32_t es_ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

#if ES_DSP
#define ES_ASM_INLINE static inline __attribute__((always_inline))

/* lanes (lo, hi) += sign-extended bytes 0 and 2 of w */
ES_ASM_INLINE uint32_t es_sxtab16(uint32_t acc, uint32_t w)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(acc), "r"(w));
    return r;
}

/* lanes (lo, hi) += sign-extended bytes 1 and 3 of w */
ES_ASM_INLINE uint32_t es_sxtab16_ror8(uint32_t acc, uint32_t w)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(w));
    return r;
}

/* (sign-extended byte 0, byte 2) as two int16 lanes */
ES_ASM_INLINE uint32_t es_sxtb16(uint32_t w)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(w));
    return r;
}

/* (sign-extended byte 1, byte 3) as two int16 lanes */
ES_ASM_INLINE uint32_t es_sxtb16_ror8(uint32_t w)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
    return r;
}

/* (byte 0, byte 2) zero-extended as two uint16 lanes */
ES_ASM_INLINE uint32_t es_uxtb16(uint32_t w)
{
    uint32_t r;
    __asm__("uxtb16 %0, %1" : "=r"(r) : "r"(w));
    return r;
}

/* (byte 1, byte 3) zero-extended as two uint16 lanes */
ES_ASM_INLINE uint32_t es_uxtb16_ror8(uint32_t w)
{
    uint32_t r;
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
    return r;
}

/* low half of a, low half of b: (a.lo, b.lo) */
ES_ASM_INLINE uint32_t es_pkhbt16(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* high half of a, high half of b: (a.hi, b.hi) */
ES_ASM_INLINE uint32_t es_pkhtb16(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* A constant the compiler must keep in a register: then `x >> s & m` is one AND with a
 * shifted operand, where GCC would otherwise emit LSR + AND-immediate for an encodable m. */
ES_ASM_INLINE uint32_t es_reg(uint32_t m)
{
    __asm__("" : "+r"(m));
    return m;
}

/* acc + a.lo * b.lo + a.hi * b.hi (signed 16-bit lanes) */
ES_ASM_INLINE int32_t es_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

/* acc + a.lo * b.lo / a.lo * b.hi / a.hi * b.lo / a.hi * b.hi (signed 16-bit halves) */
#define ES_SMLAXY(name, xy)                                                                  \
    ES_ASM_INLINE int32_t name(uint32_t a, uint32_t b, int32_t acc)                          \
    {                                                                                        \
        int32_t r;                                                                           \
        __asm__("smla" xy " %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));           \
        return r;                                                                            \
    }
ES_SMLAXY(es_smlabb, "bb")
ES_SMLAXY(es_smlabt, "bt")
ES_SMLAXY(es_smlatb, "tb")
ES_SMLAXY(es_smlatt, "tt")

/* a.lo * b.lo - a.hi * b.hi (signed 16-bit lanes) */
ES_ASM_INLINE int32_t es_smusd(uint32_t a, uint32_t b)
{
    int32_t r;
    __asm__("smusd %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
#endif /* ES_DSP */

#endif /* ES_DSP_H */
