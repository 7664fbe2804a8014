/*
 * EdgeSpike core: synaptic kernels (one weight encoding per file, as CMSIS-NN). Each kernel has
 * a portable C path and a DSP path (es_dsp.h), chosen at compile time, with the same results.
 *
 * A kernel computes the synaptic input of output neurons [k0, k0 + n) of one layer for one
 * step, as the neuron update takes it: a6[k] = shift(S[k], W.exp) << 6 (a_in << 6 of
 * docs/SEMANTICS.md), and WRITES a6[0 .. n) (no need to clear it first), where
 *   spikes: S[k] = sum over the listed rows j of W[j][k0 + k]
 *   values: S[k] = sum over all rows j of x[j] * W[j][k0 + k]
 * Zero inputs cost nothing: only listed rows (spikes) or non-zero values are read. SynOps are
 * counted by the engine from the per-row non-zero counts. a6 must have room for n rounded up
 * to a multiple of 4 entries (ternary blocks fill whole code bytes).
 *
 * Exactness in int32: a spike sum lies between minus the column's negative sum and its
 * positive sum, both < 2^31 (the validator bounds them); a values sum is exact in int32 when
 * the layer's ES_LAYER_SUM32 flag is set (the parser checks (positive + negative column sum)
 * x input_max_abs < 2^31); otherwise the engine uses the int64 kernels.
 */
#ifndef ES_KERNEL_H
#define ES_KERNEL_H

#include "es_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The active input rows of one step (a spike list). n >= 1 when given to a kernel. */
typedef struct {
    const uint16_t *idx;
    uint32_t n;
} es_rows_t;

/* shift(S, exp) << 6 as two shifts: (S >> sr) << sl. */
typedef struct {
    uint32_t sr, sl;
} es_a6_shift_t;

ES_INLINE es_a6_shift_t es_a6_shift(int8_t exp)
{
    es_a6_shift_t s;
    s.sr = exp < 0 ? (uint32_t)(-exp) : 0u;
    s.sl = 6u + (exp > 0 ? (uint32_t)exp : 0u);
    return s;
}

/* |shift(S, exp)| < 2^18 for every validated layer, so the result fits int32. */
ES_INLINE int32_t es_a6(int32_t sum, es_a6_shift_t s)
{
    return (int32_t)((uint32_t)(sum >> s.sr) << s.sl);
}

/* a6[0 .. n) = es_a6(S[0 .. n)) in place. */
ES_INLINE void es_a6_all(int32_t *a6, uint32_t n, es_a6_shift_t s)
{
    for (uint32_t k = 0; k < n; ++k) {
        a6[k] = es_a6(a6[k], s);
    }
}

void es_kernel_int8_spikes(const es_weights_t *w, const es_rows_t *rows, uint32_t k0, uint32_t n,
                           int32_t *a6);
void es_kernel_int8_values(const es_weights_t *w, const int32_t *x, uint32_t k0, uint32_t n,
                           int32_t *a6);

/* Ternary: S[k] = P * a_pos[k] - N * a_neg[k], P / N the +/- codes met in the listed rows
 * (values: the sums of the inputs met on + / - codes). */
void es_kernel_ternary_spikes(const es_weights_t *w, const es_rows_t *rows, uint32_t k0,
                              uint32_t n, int32_t *a6);
void es_kernel_ternary_values(const es_weights_t *w, const int32_t *x, uint32_t k0, uint32_t n,
                              int32_t *a6);

/* Values layers whose sums may not fit int32 (ES_LAYER_SUM32 clear): the same a6 from a
 * 64-bit accumulation. Plain C. */
void es_kernel_values64(const es_weights_t *w, const int32_t *x, uint32_t k0, uint32_t n,
                        int32_t *a6);

/* Non-zero weights of each row (SynOps per event): nnz[j] for j < fan_in. */
void es_kernel_int8_row_nnz(const es_weights_t *w, uint16_t *nnz);
void es_kernel_ternary_row_nnz(const es_weights_t *w, uint16_t *nnz);

#ifdef __cplusplus
}
#endif
#endif /* ES_KERNEL_H */
