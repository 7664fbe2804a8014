/*
 * EdgeSpike core: helpers shared by the core's .c files. Not part of the public API.
 */
#ifndef ES_INTERNAL_H
#define ES_INTERNAL_H

#include <stdarg.h>
#include "es_engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Output neurons are processed in chunks of this many, so the accumulators live on the
 * stack (no arena space, which Model.state_bytes() fixes) and stay hot. Multiple of 4 (one
 * ternary byte holds 4 codes). Stack use of one layer step: about 16 * ES_CHUNK bytes. */
#ifndef ES_CHUNK
#define ES_CHUNK 128
#endif
#if (ES_CHUNK % 4) != 0 || ES_CHUNK < 4
#error "ES_CHUNK must be a positive multiple of 4"
#endif

/* Hot helpers must be inlined even at -Os (gcc otherwise calls an outlined copy per use,
 * which doubled the cost of a neuron update on the M4). */
#if defined(__GNUC__)
#define ES_INLINE static inline __attribute__((always_inline))
#else
#define ES_INLINE static inline
#endif

/* The core relies on >> of a negative signed value being an arithmetic (floor) shift, as on
 * every compiler we target (gcc, clang, arm-none-eabi-gcc); tests/test_core.c checks it. */

ES_INLINE uint32_t es_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

ES_INLINE int16_t es_le16s(const uint8_t *p)
{
    return (int16_t)(uint16_t)((uint16_t)p[0] | (uint16_t)((uint16_t)p[1] << 8));
}

/* shift(a, e) of SEMANTICS: a << e for e >= 0 (as a product: left shifts of negatives are
 * undefined in C), floor(a / 2^-e) otherwise. Callers guarantee the result fits int32. */
ES_INLINE int32_t es_shift32(int32_t a, int8_t e)
{
    return e >= 0 ? a * ((int32_t)1 << e) : a >> (-e);
}

ES_INLINE int32_t es_shift64(int64_t a, int8_t e)
{
    return (int32_t)(e >= 0 ? a * ((int64_t)1 << e) : a >> (-e));
}

/* Fill err (may be NULL) and return code. fmt knows %d (int32_t), %u (uint32_t), %s. */
es_status_t es_error_set(es_error_t *err, es_status_t code, uint32_t detail, const char *fmt, ...);
es_status_t es_error_vset(es_error_t *err, es_status_t code, uint32_t detail, const char *fmt,
                          va_list ap);

/* Weight value (j, k) as an integer: int8 or +a_pos / -a_neg. For validation, not hot loops. */
int32_t es_weight_at(const es_weights_t *w, uint32_t j, uint32_t k);

#ifdef __cplusplus
}
#endif
#endif /* ES_INTERNAL_H */
