/*
 * EdgeSpike core: event-driven synaptic kernels (one weight encoding per file, as CMSIS-NN).
 *
 * A kernel adds the rows of the active inputs into accumulators for output neurons
 * [k0, k1) of one layer (k1 - k0 <= ES_CHUNK). Zero inputs cost nothing: only listed rows are
 * read. SynOps are counted by the engine from the per-row non-zero counts.
 */
#ifndef ES_KERNEL_H
#define ES_KERNEL_H

#include "es_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The active input rows of one step: uint16 indices (spike lists, es_engine_step), or uint32
 * events whose low 16 bits are the index (a run's input, read in place). */
typedef struct {
    const uint16_t *idx16;
    const uint32_t *idx32;
    uint32_t n;
} es_rows_t;

ES_INLINE uint32_t es_row_at(const es_rows_t *rows, uint32_t r)
{
    return rows->idx16 != NULL ? rows->idx16[r] : (rows->idx32[r] & 0xFFFFu);
}

/* Spike inputs (x = 1): acc[k - k0] += W[j][k] for every listed j. int32 is exact: every
 * partial sum lies between minus the negative and the positive column sum, < 2^31 (validated). */
void es_kernel_int8_spikes(const es_weights_t *w, const es_rows_t *rows, uint32_t k0, uint32_t k1,
                           int32_t *acc);
/* Direct-encoded values (first layer): acc[k - k0] += x[j] * W[j][k] over non-zero x[j].
 * int64, because signed inputs can reach (positive + negative column sum) * bound < 2^32. */
void es_kernel_int8_values(const es_weights_t *w, const int32_t *x, uint32_t k0, uint32_t k1,
                           int64_t *acc);

/* Ternary spikes: counts +/- codes per neuron in one word (low half +, high half -), then
 * acc[k - k0] = P * a_pos[k] - N * a_neg[k], once per neuron per step. acc needs room for
 * ES_CHUNK entries (whole bytes of codes are unpacked). */
void es_kernel_ternary_spikes(const es_weights_t *w, const es_rows_t *rows, uint32_t k0,
                              uint32_t k1, int32_t *acc);
void es_kernel_ternary_values(const es_weights_t *w, const int32_t *x, uint32_t k0, uint32_t k1,
                              int64_t *acc);

/* Non-zero weights of each row (SynOps per event): nnz[j] for j < fan_in. */
void es_kernel_int8_row_nnz(const es_weights_t *w, uint16_t *nnz);
void es_kernel_ternary_row_nnz(const es_weights_t *w, uint16_t *nnz);

#ifdef __cplusplus
}
#endif
#endif /* ES_KERNEL_H */
