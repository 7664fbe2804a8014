/*
 * Host only: the C core with the model parsed once (see es_host_core.h). Built on the engine's
 * public API (es_engine.h); the outputs are laid out as es_runner.c's es_run_batch.
 */
#include <stdbool.h>
#include <string.h>

#include "es_engine.h"
#include "es_host_core.h"
#include "es_runner.h"

static void copy_text(char *dst, uint32_t len, const char *src)
{
    if (dst == NULL || len == 0u) {
        return;
    }
    uint32_t i = 0;
    for (; i + 1u < len && src[i] != '\0'; ++i) {
        dst[i] = src[i];
    }
    dst[i] = '\0';
}

size_t es_host_model_bytes(void)
{
    return sizeof(es_model_t);
}

int32_t es_host_model_parse(void *model, uint32_t model_bytes, const uint8_t *blob, uint32_t len,
                            char *err_text, uint32_t err_len)
{
    es_error_t err;
    memset(&err, 0, sizeof(err));
    copy_text(err_text, err_len, "");
    if (model == NULL || model_bytes < sizeof(es_model_t) || ((uintptr_t)model & 7u) != 0u) {
        copy_text(err_text, err_len, "model buffer too small or not 8-byte aligned");
        return (int32_t)ES_ERR_INTERNAL;
    }
    es_status_t st = es_model_parse((es_model_t *)model, blob, len, &err);
    if (st != ES_OK) {
        copy_text(err_text, err_len, err.text);
    }
    return (int32_t)st;
}

/* Step hook: copy every layer's spikes of the step into the raster (layer blocks T x size). */
typedef struct {
    uint8_t *raster;
} es_raster_ctx_t;

static void record_raster(void *ctx, const es_engine_t *e, uint32_t step)
{
    es_raster_ctx_t *rc = (es_raster_ctx_t *)ctx;
    const es_model_t *m = e->model;
    uint8_t *block = rc->raster;
    for (uint32_t l = 0; l < m->n_layers; ++l) {
        const uint32_t size = m->layers[l].size;
        uint8_t *row = block + (size_t)step * size;
        for (uint32_t i = 0; i < e->n_spk[l]; ++i) {
            row[e->spk[l][i]] = 1u;
        }
        block += (size_t)m->timesteps * size;
    }
}

/* One inference on a ready engine; writes this input's outputs. */
static es_status_t run_one(es_engine_t *e, const es_input_t *in, uint32_t neurons,
                           int64_t *scores, int32_t *prediction, uint64_t *counters,
                           uint8_t *raster, int32_t *final_u, int32_t *final_v,
                           int32_t *final_th, es_error_t *err)
{
    const es_model_t *m = e->model;
    es_raster_ctx_t rc = {raster};
    if (raster != NULL) {
        memset(raster, 0, (size_t)m->timesteps * neurons);
    }
    es_engine_set_step_hook(e, raster != NULL ? record_raster : NULL, &rc);
    es_result_t res;
    memset(&res, 0, sizeof(res));
    res.scores = scores;
    es_status_t st = es_engine_run(e, in, &res, err);
    es_engine_set_step_hook(e, NULL, NULL);
    if (st != ES_OK) {
        return st;
    }
    if (prediction != NULL) {
        *prediction = res.prediction;
    }
    if (counters != NULL) {
        for (uint32_t l = 0; l < m->n_layers; ++l) {
            uint64_t *c = counters + ES_RUNNER_COUNTERS * l;
            c[0] = res.layers[l].input_events;
            c[1] = res.layers[l].synops;
            c[2] = res.layers[l].neuron_updates;
            c[3] = res.layers[l].spikes;
            c[4] = res.layers[l].cycles;
        }
    }
    uint32_t off = 0;
    for (uint8_t l = 0; l < m->n_layers; ++l) {
        const uint32_t size = m->layers[l].size;
        const int32_t *th = es_engine_th(e, l);
        if (final_u != NULL) {
            memcpy(final_u + off, es_engine_u(e, l), 4u * size);
        }
        if (final_v != NULL) {
            memcpy(final_v + off, es_engine_v(e, l), 4u * size);
        }
        if (final_th != NULL) {
            if (th != NULL) {
                memcpy(final_th + off, th, 4u * size);
            } else {
                memset(final_th + off, 0, 4u * size);
            }
        }
        off += size;
    }
    return ES_OK;
}

int32_t es_host_run_batch(const void *model, uint32_t n_inputs,
                          const uint32_t *events, const uint32_t *event_offsets,
                          const int32_t *values, uint32_t input_flags,
                          void *arena, uint32_t arena_bytes,
                          int64_t *scores, int32_t *predictions, uint64_t *counters,
                          uint8_t *rasters, int32_t *final_u, int32_t *final_v, int32_t *final_th,
                          uint32_t *failed_input, char *err_text, uint32_t err_len)
{
    const es_model_t *m = (const es_model_t *)model;
    es_engine_t e;
    es_error_t err;
    memset(&err, 0, sizeof(err));
    if (failed_input != NULL) {
        *failed_input = n_inputs;
    }
    copy_text(err_text, err_len, "");
    if (m == NULL || scores == NULL) {
        copy_text(err_text, err_len, "no parsed model or no scores buffer");
        return (int32_t)ES_ERR_INTERNAL;
    }
    if (es_engine_init(&e, m, arena, arena_bytes, &err) != ES_OK) {
        copy_text(err_text, err_len, err.text);
        return (int32_t)err.code;
    }
    uint32_t neurons = 0;
    for (uint32_t l = 0; l < m->n_layers; ++l) {
        neurons += m->layers[l].size;
    }
    const uint32_t n_out = m->layers[m->n_layers - 1u].size;
    const bool is_static = (input_flags & ES_INPUT_STATIC) != 0u;
    const uint32_t per_values = is_static ? m->input_size : (uint32_t)m->timesteps * m->input_size;
    for (uint32_t i = 0; i < n_inputs; ++i) {
        es_input_t in;
        memset(&in, 0, sizeof(in));
        es_status_t st = ES_OK;
        if (m->input_kind == ES_INPUT_SPIKES) {
            if (event_offsets == NULL || event_offsets[i + 1u] < event_offsets[i]) {
                st = ES_ERR_BAD_INPUT;
                copy_text(err.text, sizeof(err.text), "bad event offsets");
            } else {
                in.events = events != NULL ? events + event_offsets[i] : NULL;
                in.n_events = event_offsets[i + 1u] - event_offsets[i];
            }
        } else {
            in.values = values != NULL ? values + (size_t)i * per_values : NULL;
            in.n_values = values != NULL ? per_values : 0u;
            in.static_values = is_static;
        }
        if (st == ES_OK) {
            const size_t L = (size_t)ES_RUNNER_COUNTERS * m->n_layers;
            st = run_one(&e, &in, neurons, scores + (size_t)i * n_out,
                         predictions ? predictions + i : NULL,
                         counters ? counters + (size_t)i * L : NULL,
                         rasters ? rasters + (size_t)i * m->timesteps * neurons : NULL,
                         final_u ? final_u + (size_t)i * neurons : NULL,
                         final_v ? final_v + (size_t)i * neurons : NULL,
                         final_th ? final_th + (size_t)i * neurons : NULL, &err);
        }
        if (st != ES_OK) {
            if (failed_input != NULL) {
                *failed_input = i;
            }
            copy_text(err_text, err_len, err.text);
            return (int32_t)st;
        }
    }
    return ES_OK;
}
