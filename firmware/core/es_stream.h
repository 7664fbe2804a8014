/*
 * EdgeSpike core: streaming on top of the engine (docs/streaming.md). Portable C99, no I/O,
 * no malloc, no floating point; all state in one es_stream_t the caller owns.
 *
 * A stream runs the engine one step at a time, without end, and makes decisions:
 *   per-window (hop == window): the state is reset at the start of every window of `window`
 *     steps; the decision after its last step is exactly es_engine_run on those steps (for
 *     window == timesteps; other windows: the same model with timesteps = window).
 *   sliding (hop < window): the state is never reset; after step t (t + 1 >= window and
 *     (t + 1 - window) % hop == 0) the decision's scores are the output spikes over the last
 *     `window` steps (DECODE_SPIKE_COUNT) or the output voltages now (DECODE_MEMBRANE_LAST).
 * The on-device delta encoder turns raw integer samples (channels per step) into UP / DOWN
 * events (index c / channels + c) for a spike model with input_size == 2 * channels:
 *   at the first step of a window (per-window) or of the stream (sliding): ref[c] = sample;
 *   every step: d = sample - ref[c]; d >= thr[c]: UP, ref[c] += thr[c];
 *               d <= -thr[c]: DOWN, ref[c] -= thr[c].
 */
#ifndef ES_STREAM_H
#define ES_STREAM_H

#include "es_engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Raw sample channels the delta encoder takes (StreamStart.delta_thresholds max_count). */
#define ES_STREAM_MAX_CHANNELS 128u
/* Sliding spike-count decisions keep window x outputs spike bits of the last steps. */
#ifndef ES_STREAM_RING_BYTES
#define ES_STREAM_RING_BYTES 16384u
#endif

typedef struct {
    uint16_t window;   /* 0: model->stream_window, else model->timesteps */
    uint16_t hop;      /* 0: model->stream_hop, else window (per-window) */
    bool raw;          /* steps come as raw samples for the delta encoder */
    uint16_t channels; /* raw: channels per step (input_size / 2) */
    const int32_t *thresholds; /* raw: channels thresholds, each >= 1 */
} es_stream_cfg_t;

typedef struct {
    uint32_t index;    /* decisions since the start */
    uint32_t end_step; /* stream step of the window's last step */
    int32_t prediction;
    uint16_t n_scores; /* scores written to the caller's buffer */
} es_decision_t;

typedef struct {
    es_engine_t *engine;
    uint16_t window, hop;
    bool sliding;
    bool raw;
    uint16_t channels;
    int32_t thr[ES_STREAM_MAX_CHANNELS];
    int32_t ref[ES_STREAM_MAX_CHANNELS];
    uint16_t enc[2u * ES_STREAM_MAX_CHANNELS]; /* this step's encoded events */
    uint32_t steps;     /* steps run since the start */
    uint32_t in_window; /* per-window: steps into the current window */
    uint32_t decisions;
    uint8_t ring[ES_STREAM_RING_BYTES]; /* sliding spike count: window rows of outputs */
    es_counters_t counters[ES_MAX_LAYERS]; /* work since the start */
} es_stream_t;

/* Open a stream on an initialised engine (resets its state). ES_ERR_BAD_INPUT /
 * ES_ERR_UNSUPPORTED / ES_ERR_MODEL_TOO_LARGE with a reason in err when cfg does not fit. */
es_status_t es_stream_start(es_stream_t *s, es_engine_t *e, const es_stream_cfg_t *cfg,
                            es_error_t *err);

/* One step. Input by the stream's kind: spike indices (strictly increasing, < input_size),
 * values (input_size, |v| <= input_max_abs) or raw samples (channels). After the step the
 * engine's output spikes are in e->spk[last] / e->n_spk[last]. When the step ends a window,
 * *decided is set and d / scores (output size int64) hold the decision. */
es_status_t es_stream_step(es_stream_t *s, const uint16_t *indices, uint16_t n_indices,
                           const int32_t *values, const int32_t *samples, int64_t *scores,
                           es_decision_t *d, bool *decided);

/* The delta encoder alone (for tests): encode one step of samples with thr/ref state,
 * writing event indices (UP c, DOWN channels + c, increasing) to out; returns the count. */
uint16_t es_delta_encode(uint16_t channels, const int32_t *thr, int32_t *ref,
                         const int32_t *samples, uint16_t *out);

#ifdef __cplusplus
}
#endif
#endif /* ES_STREAM_H */
