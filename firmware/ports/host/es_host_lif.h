/*
 * Host only: the neuron update of the batched exact simulator (edgespike.sim.batch).
 *
 * The simulator runs a model layer by layer over a whole batch and all time steps. A layer's
 * feed-forward input arrives either as synaptic sums computed for every input and step at once
 * by one exact matrix product (direct-encoded values: docs/SEMANTICS.md, "Bounds", says why the
 * floating-point product is exact), or as the 0/1 spike raster of the previous layer (or of a
 * spike input), whose sums this kernel adds up (event by event, or as dot products where
 * that is cheaper). It then runs the layer's LIF
 * neurons step by step, input by input, with the rules of docs/SEMANTICS.md (the numpy
 * reference is their definition), adding the recurrent sums event by event too. It is not
 * part of the portable core: it runs in the host library only.
 */
#ifndef ES_HOST_LIF_H
#define ES_HOST_LIF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ES_HOST_LIF_VERSION 4u

/* es_host_layer_t.in_kind */
#define ES_HOST_IN_SUMS 0u   /* in_sums: unshifted sums, n x steps x size */
#define ES_HOST_IN_STATIC 1u /* in_sums: n x size, the same at every step (a static input) */
#define ES_HOST_IN_SPIKES 2u /* in_spikes: n x steps x fan_in, 0 or 1, with w and w_nnz */

/* One layer: n inputs, steps time steps, size neurons. Every buffer belongs to the caller and
 * every array is C-contiguous; state outputs may be the caller's result arrays. */
typedef struct {
    uint32_t n;              /* inputs */
    uint32_t steps;          /* time steps */
    uint32_t size;           /* neurons */
    uint32_t fan_in;         /* inputs of the layer (ES_HOST_IN_SPIKES) */
    uint32_t in_kind;        /* ES_HOST_IN_* */
    const int32_t *in_sums;  /* SUMS / STATIC: unshifted feed-forward sums */
    const uint8_t *in_spikes;/* SPIKES: the input raster */
    const int32_t *w;        /* SPIKES: weights, fan_in x size (row j: from input j) */
    const int8_t *wt8;       /* SPIKES: the same weights transposed, size x fan_in, when every
                                weight fits int8 (else NULL) */
    const int16_t *wt16;     /* SPIKES: ... as int16 (used when wt8 is NULL) */
    const uint32_t *w_nnz;   /* SPIKES: non-zero weights per row (SynOps per event), fan_in */
    int32_t w_exp;           /* feed-forward weight exponent, -31..16 */
    const int32_t *rec;      /* recurrent weights, size x size, or NULL */
    const int8_t *rec_t8;    /* recurrent weights transposed, int8 (or NULL) */
    const int16_t *rec_t16;  /* ... as int16 (used when rec_t8 is NULL) */
    const uint32_t *rec_nnz; /* recurrent: non-zero weights per row, size */
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
    int32_t *counts;         /* out, optional (NULL): n x size, spikes per neuron */
    int64_t *events;         /* out, optional: n, input events counted here (SPIKES inputs and
                                recurrent spikes), added to */
    int64_t *synops;         /* out, optional: n, their SynOps, added to */
    uint8_t *ref;            /* scratch: size bytes (refractory counters); NULL if refractory 0 */
    int32_t *acc;            /* scratch: size int32 (SPIKES sums); NULL unless SPIKES */
    int32_t *acc_rec;        /* scratch: size int32 (recurrent sums); NULL if rec is NULL */
    uint32_t *idx;           /* scratch: max(fan_in, size) uint32 (event indices); SPIKES or rec */
} es_host_layer_t;

/* Run the layer from reset state (u, v, th are zeroed first). Returns 0, or 1 if a buffer
 * that the parameters need is NULL or in_kind is unknown. */
int32_t es_host_lif_layer(const es_host_layer_t *p);

/* 1 if every input's steps are byte-for-byte its first step (a static input), else 0.
 * x: n inputs of steps rows of row_bytes bytes each, contiguous. */
int32_t es_host_static_input(const uint8_t *x, uint32_t n, uint32_t steps, uint64_t row_bytes);

/* es_host_value_range kinds: the element type of x */
#define ES_HOST_INT8 1u
#define ES_HOST_UINT8 2u
#define ES_HOST_INT16 3u
#define ES_HOST_UINT16 4u
#define ES_HOST_INT32 5u
#define ES_HOST_UINT32 6u
#define ES_HOST_INT64 7u

/* The smallest and largest value of rows rows of row_elems integers of type kind (ES_HOST_*),
 * row r starting stride elements after row r - 1 (stride = row_elems: contiguous). The
 * simulator's input check uses it to accept an input in one pass (and, for a static input,
 * over its first steps only); any input it would refuse goes through the exact check, which
 * says why. Returns 0, or 1 for an unknown kind or empty rows. */
int32_t es_host_value_range(const void *x, uint32_t kind, uint64_t rows, uint64_t row_elems,
                            uint64_t stride, int64_t *lo, int64_t *hi);

uint32_t es_host_lif_version(void);

#ifdef __cplusplus
}
#endif
#endif /* ES_HOST_LIF_H */
