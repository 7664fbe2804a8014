/*
 * Host only: the neuron update of the batched exact simulator (edgespike.sim.batch).
 *
 * The simulator computes every layer's feed-forward synaptic sums for a whole batch and all
 * time steps with one matrix product (exact: docs/SEMANTICS.md, "Bounds"); this kernel then
 * runs the layer's LIF neurons over the time steps, input by input, with the rules of
 * docs/SEMANTICS.md (the numpy reference is their definition), and adds the recurrent sums
 * event by event. It is not part of the portable core: it runs on the host library only.
 */
#ifndef ES_HOST_LIF_H
#define ES_HOST_LIF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ES_HOST_LIF_VERSION 1u

/* One layer, n inputs, steps time steps, size neurons. Every buffer belongs to the caller. */
typedef struct {
    uint32_t n;              /* inputs */
    uint32_t steps;          /* time steps */
    uint32_t size;           /* neurons */
    uint32_t ff_static;      /* 1: ff holds one step per input (n x size), used at every step */
    const int32_t *ff;       /* unshifted feed-forward sums, n x steps x size (see ff_static) */
    int32_t ff_exp;          /* their weight exponent, -31..16 */
    const int32_t *rec;      /* recurrent weights, size x size (row j: from neuron j), or NULL */
    int32_t rec_exp;         /* recurrent weight exponent */
    uint32_t du, dv;         /* decays, 0..4096 */
    uint32_t adapt_decay;    /* 0..4096 */
    int32_t adapt_step6;     /* adapt_step << 6; 0: no adaptive threshold */
    uint32_t refractory;     /* 0..255; 0: none */
    uint32_t reset_subtract; /* 0: reset to zero, 1: reset by subtraction */
    const int32_t *vth6;     /* size: vth << 6 per neuron */
    const int32_t *bias;     /* size: bias_mant << bias_exp per neuron */
    uint8_t *spikes;         /* out: n x steps x size, 0 or 1 */
    int32_t *u, *v, *th;     /* out: n x size, the state after the last step */
    int64_t *vsum;           /* out, optional (NULL): n x size, the sum over steps of v */
    uint8_t *ref;            /* scratch: size bytes (refractory counters); NULL if refractory 0 */
    int32_t *acc;            /* scratch: size int32 (recurrent sums); NULL if rec is NULL */
} es_host_layer_t;

/* Run the layer from reset state (u, v, th are zeroed first). Returns 0, or 1 if a buffer
 * that the parameters need is NULL. */
int32_t es_host_lif_layer(const es_host_layer_t *p);

uint32_t es_host_lif_version(void);

#ifdef __cplusplus
}
#endif
#endif /* ES_HOST_LIF_H */
