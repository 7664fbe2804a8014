/*
 * EdgeSpike core: the integer CUBA-LIF neuron of docs/SEMANTICS.md (Loihi 2 fixed point).
 */
#ifndef ES_LIF_H
#define ES_LIF_H

#include "es_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ES_MAX24 ((int32_t)1 << 23)

/* trunc0(x * (4096 - d) / 4096): the product in 64 bits, rounded toward zero (adding 4095
 * before the floor shift of a negative product rounds it up, i.e. toward zero). */
ES_INLINE int32_t es_decay(int32_t x, uint32_t d)
{
    int64_t p = (int64_t)x * (int32_t)(4096u - d);
    p += (p >> 63) & 4095;
    return (int32_t)(p >> 12);
}

/* One 24-bit wrap, as Lava: keeps +2^23, maps values <= -2^23 up by 2^24. */
ES_INLINE int32_t es_wrap24(int32_t a)
{
    if (a > ES_MAX24) {
        return a - 2 * ES_MAX24;
    }
    if (a <= -ES_MAX24) {
        return a + 2 * ES_MAX24;
    }
    return a;
}

/* Saturate to [-(2^23 - 1), 2^23 - 1]. */
ES_INLINE int32_t es_clip24(int32_t a)
{
    if (a > ES_MAX24 - 1) {
        return ES_MAX24 - 1;
    }
    if (a < -(ES_MAX24 - 1)) {
        return -(ES_MAX24 - 1);
    }
    return a;
}

/* Choose the loop and constants of a layer's update once (the engine does it at init).
 * small_input: every |a_in| of the layer is below 2^17 (ES_LAYER_SMALL_INPUT); adaptive /
 * refractory: the layer has that state. */
void es_lif_plan(const es_neurons_t *n, bool small_input, bool adaptive, bool refractory,
                 es_lif_plan_t *p);

/* es_lif_update with a plan from es_lif_plan (the same neurons and flags). keep_u: store u
 * even where it carries nothing to the next step (du = 4096), for a caller that reads it. */
uint32_t es_lif_run(const es_lif_plan_t *p, const es_neurons_t *n, const es_lif_state_t *s,
                    uint32_t k0, uint32_t k1, const int32_t *a6, uint16_t *spk_out, bool *quiet,
                    bool keep_u);

/* Update neurons [k0, k1) of a layer for one step. a6[k - k0] is neuron k's synaptic input
 * a_in << 6 (docs/SEMANTICS.md, as the kernels give it); a6 == NULL means no input.
 * small_input: every |a_in| of the layer is below 2^17 (ES_LAYER_SMALL_INPUT).
 * Spiking neuron indices are appended to spk_out; returns how many. quiet (may be NULL) is
 * set to true only when there was no input and every state of the range is zero afterwards,
 * so that a following step without input cannot change anything (the engine skips it). */
uint32_t es_lif_update(const es_neurons_t *n, const es_lif_state_t *s, uint32_t k0, uint32_t k1,
                       const int32_t *a6, bool small_input, uint16_t *spk_out, bool *quiet);

#ifdef __cplusplus
}
#endif
#endif /* ES_LIF_H */
