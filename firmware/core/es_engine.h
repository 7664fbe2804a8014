/*
 * EdgeSpike core: the integer SNN engine. Portable C99, no I/O, no malloc, no floating point.
 *
 * The rules it implements are in docs/SEMANTICS.md; the numpy reference
 * (host_sdk/edgespike/sim/reference.py) is their executable form and must match bit for bit.
 *
 * Life cycle (all memory belongs to the caller, the "port"):
 *   es_model_t m;  es_engine_t e;
 *   es_model_parse(&m, blob, len, &err);          // validates; m points into blob
 *   need = es_engine_arena_bytes(&m);             // state the port must provide
 *   es_engine_init(&e, &m, arena, arena_bytes, &err);
 *   es_engine_run(&e, &input, &result, &err);     // one inference from reset state
 */
#ifndef ES_ENGINE_H
#define ES_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Compile-time limits; a port may override them with -D. */
#ifndef ES_MAX_LAYERS
#define ES_MAX_LAYERS 8
#endif
#ifndef ES_MAX_LAYER_SIZE
#define ES_MAX_LAYER_SIZE 4096 /* neurons per layer (and inputs); spike lists are uint16 */
#endif
#ifndef ES_ERROR_TEXT
#define ES_ERROR_TEXT 96 /* bytes of error text, NUL included */
#endif

/* Status codes: the same numbers as the protocol's ErrorCode enum. */
typedef enum {
    ES_OK = 0,
    ES_ERR_BAD_CRC = 1,
    ES_ERR_BAD_FRAME = 2,
    ES_ERR_FRAME_TOO_LONG = 3,
    ES_ERR_DECODE = 4,
    ES_ERR_UNKNOWN_MESSAGE = 5,
    ES_ERR_NO_MODEL = 6,
    ES_ERR_MODEL_TOO_LARGE = 7,
    ES_ERR_MODEL_INVALID = 8,
    ES_ERR_MODEL_CRC = 9,
    ES_ERR_UPLOAD_NOT_STARTED = 10,
    ES_ERR_UPLOAD_OFFSET = 11,
    ES_ERR_UPLOAD_INCOMPLETE = 12,
    ES_ERR_BAD_INPUT = 13,
    ES_ERR_UNSUPPORTED = 14,
    ES_ERR_INTERNAL = 15
} es_status_t;

/* Why something failed: a code, a human text and a number (layer index, byte offset...). */
typedef struct {
    es_status_t code;
    uint32_t detail;
    char text[ES_ERROR_TEXT];
} es_error_t;

typedef enum { ES_W_INT8 = 0, ES_W_TERNARY2 = 1 } es_wenc_t;
typedef enum { ES_RESET_ZERO = 0, ES_RESET_SUBTRACT = 1 } es_reset_t;
typedef enum { ES_INPUT_SPIKES = 0, ES_INPUT_VALUES = 1 } es_input_kind_t;
typedef enum {
    ES_DECODE_SPIKE_COUNT = 0,
    ES_DECODE_MEMBRANE_LAST = 1,
    ES_DECODE_MEMBRANE_SUM = 2,
    ES_DECODE_FIRST_SPIKE = 3
} es_decoding_t;
typedef enum {
    ES_CYCLES_NONE = 0,
    ES_CYCLES_DWT = 1,
    ES_CYCLES_QEMU_ICOUNT = 2,
    ES_CYCLES_HOST_NS = 3
} es_cycle_source_t;

/* A weight matrix as it lies in the blob (pointers into the blob, nothing copied). */
typedef struct {
    uint16_t fan_in;
    uint16_t fan_out;
    es_wenc_t encoding;
    int8_t exp;
    uint8_t a_pos, a_neg;          /* ternary, per layer */
    const uint8_t *a_pos_pn;       /* ternary, per neuron (fan_out bytes) or NULL */
    const uint8_t *a_neg_pn;
    const uint8_t *data;           /* int8: fan_in*fan_out; ternary: fan_in*ceil(fan_out/4) */
    uint32_t data_len;
    uint8_t flags;                 /* ES_W_*: facts the parser proved for the kernels */
} es_weights_t;

/* es_weights_t.flags */
#define ES_W_VALUES16 0x1u  /* ternary, per-layer magnitudes, input_max_abs * max(a_pos, a_neg)
                               < 2^15: x * a fits an int16 lane (first layer of a values model) */

typedef struct {
    uint16_t du, dv, adapt_decay;  /* 0..4096 */
    uint32_t vth;                  /* 0..131071 */
    const uint8_t *vth_pn;         /* uint32 LE per neuron, or NULL */
    int16_t bias_mant;
    const uint8_t *bias_pn;        /* int16 LE per neuron, or NULL */
    uint8_t bias_exp;
    es_reset_t reset;
    uint8_t refractory;
    uint32_t adapt_step;
} es_neurons_t;

typedef struct {
    uint16_t size;
    bool recurrent;
    uint8_t flags;                 /* ES_LAYER_*: facts the parser proved for the engine */
    es_weights_t w;
    es_weights_t rec;              /* valid when recurrent */
    es_neurons_t n;
} es_layer_t;

/* es_layer_t.flags */
#define ES_LAYER_SMALL_INPUT 0x1u /* every |a_in| < 2^17 (always for spike inputs; for signed
                                     direct inputs the bound is (P + N) * input_max_abs) */
#define ES_LAYER_SUM32 0x2u       /* every unshifted synaptic sum fits int32 (values inputs:
                                     (P + N) * input_max_abs < 2^31; always for spikes) */

/* A parsed, validated model: a view of the blob, which must outlive it. */
typedef struct {
    uint16_t input_size;
    es_input_kind_t input_kind;
    uint16_t input_max_abs;
    uint16_t timesteps;
    es_decoding_t decoding;
    uint32_t dt_us;
    uint8_t n_layers;
    es_layer_t layers[ES_MAX_LAYERS];
    uint32_t crc32;                /* content hash */
    uint32_t blob_len;
    /* (added for streaming; additive) Model.stream_window / stream_hop, 0 when absent */
    uint16_t stream_window;
    uint16_t stream_hop;
} es_model_t;

/* Per-layer work of one inference (docs/SEMANTICS.md, "Counters"). */
typedef struct {
    uint32_t input_events;
    uint64_t synops;
    uint32_t neuron_updates;
    uint32_t spikes;
    uint64_t cycles;
} es_counters_t;

/* A layer's neuron state as the neuron update takes it (views into the arena). */
typedef struct {
    int32_t *u;
    int32_t *v;
    int32_t *th;   /* adaptive threshold, or NULL when the layer has none */
    uint8_t *ref;  /* refractory counters, or NULL when the layer has none */
} es_lif_state_t;

/* A layer's neuron update as planned once at init (es_lif_plan in es_lif.h): which loop of
 * es_lif.c runs it, and its constants. Private to the engine. */
typedef struct {
    uint8_t loop;
    bool u_hi, v_hi;              /* 4096 - du / 4096 - dv >= 2048 */
    int32_t F_u, F_v;             /* decay constants of u and v */
    int32_t bias_m1;              /* per-layer bias - 1 */
    int32_t theta;                /* per-layer vth << 6 */
} es_lif_plan_t;

/* Reads a free-running cycle counter; supplied by the port (NULL: no cycle counts). */
typedef uint64_t (*es_cycle_fn)(void *ctx);

struct es_engine;
/* Called by es_engine_run after every step (step = 0..timesteps-1); e->spk[l] / e->n_spk[l]
 * then hold each layer's spikes of that step (used by es_runner.c to record rasters). */
typedef void (*es_step_hook_fn)(void *ctx, const struct es_engine *e, uint32_t step);

/* Per-layer cycle counts cost one counter read per layer and step; a production build may
 * compile them out with -DES_LAYER_CYCLES=0 (the whole inference is still timed). */
#ifndef ES_LAYER_CYCLES
#define ES_LAYER_CYCLES 1
#endif

/* Run state: pointers into the caller's arena. Fields are private to the engine. */
typedef struct es_engine {
    const es_model_t *model;
    uint8_t *arena;
    uint32_t arena_bytes;
    es_cycle_fn cycles;
    void *cycles_ctx;
    /* per-layer views into the arena, set by es_engine_init */
    uint16_t *spk[ES_MAX_LAYERS];       /* this step's spike indices */
    uint16_t n_spk[ES_MAX_LAYERS];
    uint16_t *prev[ES_MAX_LAYERS];      /* previous step's spikes (recurrent layers) */
    uint16_t n_prev[ES_MAX_LAYERS];
    uint16_t *row_nnz[ES_MAX_LAYERS];   /* non-zero weights per input row (SynOps) */
    uint16_t *rec_nnz[ES_MAX_LAYERS];
    int64_t *scores;                    /* one per output neuron */
    /* (added after the first API draft; additive) */
    uint32_t t;                         /* steps run since the last reset */
    es_cycle_source_t cycle_source;
    es_step_hook_fn hook;               /* NULL: none */
    void *hook_ctx;
    /* (added with the static input; additive) */
    int32_t *static_sum;                /* values models: layer 0's input of a static input */
    uint16_t *in_list;                  /* spike models: this step's input indices */
    bool quiet[ES_MAX_LAYERS];          /* all state zero: a step without input changes nothing */
    bool static_ready;                  /* static_sum holds this run's sums */
    uint32_t static_events;             /* layer 0 counters of one step of the static input */
    uint64_t static_synops;
    es_lif_plan_t lif[ES_MAX_LAYERS];   /* each layer's neuron update, planned at init */
    bool keep_u;                        /* this step's u is read afterwards (last step, stream) */
    es_lif_state_t st[ES_MAX_LAYERS];   /* each layer's u, v, th (NULL unless adaptive), ref
                                           (NULL unless refractory): views into the arena */
} es_engine_t;

/* One inference's input. Exactly one of events / values is used, by the model's input kind. */
typedef struct {
    const uint32_t *events;   /* INPUT_SPIKES: (step << 16) | index, sorted by step */
    uint32_t n_events;
    const int32_t *values;    /* INPUT_VALUES: timesteps * input_size, row-major by step */
    uint32_t n_values;
    /* INPUT_VALUES: values holds input_size values, the same at every step (a still image):
     * layer 0's sums are computed once per inference. (added later; additive) */
    bool static_values;
} es_input_t;

/* One inference's output. The caller owns every buffer. */
typedef struct {
    int32_t prediction;
    int64_t *scores;              /* caller buffer, >= output size */
    uint16_t n_scores;
    es_counters_t layers[ES_MAX_LAYERS];
    uint8_t n_layers;
    uint64_t cycles;              /* whole inference, from the port's counter */
    es_cycle_source_t cycle_source;
    uint32_t *spike_events;       /* optional: output-layer spikes (step << 16) | index */
    uint32_t spike_capacity;      /* 0: do not record */
    uint32_t n_spike_events;
    bool spikes_truncated;
} es_result_t;

/* CRC-32 (IEEE 802.3, zlib's), used for frames and the model hash. */
uint32_t es_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* Parse and validate a blob (hash, sizes, codes, ranges, the 2^17 input bound).
 * On success m points into blob. */
es_status_t es_model_parse(es_model_t *m, const uint8_t *blob, uint32_t len, es_error_t *err);

/* Bytes of arena es_engine_init needs for m (laid out as Model.state_bytes() in the SDK). */
uint32_t es_engine_arena_bytes(const es_model_t *m);

/* Bind an engine to a parsed model and an arena; fails with ES_ERR_MODEL_TOO_LARGE if the
 * arena is short. Leaves the engine in reset state. */
es_status_t es_engine_init(es_engine_t *e, const es_model_t *m, void *arena,
                           uint32_t arena_bytes, es_error_t *err);

/* Optional cycle counter (the port's DWT, SysTick or clock). */
void es_engine_set_cycle_counter(es_engine_t *e, es_cycle_fn fn, void *ctx,
                                 es_cycle_source_t source);

/* Optional per-step observer for es_engine_run (NULL to remove). */
void es_engine_set_step_hook(es_engine_t *e, es_step_hook_fn fn, void *ctx);

/* Zero all neuron state (u, v, thresholds, refractory counters, spike lists). */
void es_engine_reset(es_engine_t *e);

/* Check an input against the model without running it. Events: step < timesteps, index <
 * input_size, strictly increasing as uint32 (sorted by step, then index, no duplicates: the
 * order events_from_spikes gives). Values: exactly timesteps * input_size (input_size when
 * static_values), |value| <= input_max_abs. ES_ERR_BAD_INPUT with the offending item's
 * position in detail. */
es_status_t es_input_check(const es_model_t *m, const es_input_t *in, es_error_t *err);

/* Reset, run model->timesteps steps on in, decode into out. */
es_status_t es_engine_run(es_engine_t *e, const es_input_t *in, es_result_t *out,
                          es_error_t *err);

/* Streaming building block: one step on this step's input (events: indices only, values:
 * input_size values). The spikes of the output layer are left in e->spk[last].
 * counters: n_layers entries, added to (not cleared). Scores accumulate per the decoding
 * (first-spike scores only while step < timesteps). Indices must be < input_size and should
 * not repeat (ES_ERR_BAD_INPUT if out of range; a repeated index counts twice). */
es_status_t es_engine_step(es_engine_t *e, const uint16_t *indices, uint16_t n_indices,
                           const int32_t *values, es_counters_t *counters);

/* Size of state arrays a caller can read back (final state, for tests): */
const int32_t *es_engine_u(const es_engine_t *e, uint8_t layer);
const int32_t *es_engine_v(const es_engine_t *e, uint8_t layer);
/* Adaptive threshold state of a layer, or NULL when the layer is not adaptive. */
const int32_t *es_engine_th(const es_engine_t *e, uint8_t layer);

#ifdef __cplusplus
}
#endif
#endif /* ES_ENGINE_H */
