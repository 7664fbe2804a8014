/*
 * EdgeSpike core: flat entry points over the engine (see es_runner.h for the contract).
 */
#include <string.h>

#include "es_internal.h"
#include "es_runner.h"

uint32_t es_core_version(void)
{
    return ES_CORE_VERSION;
}

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

static int32_t fail(const es_error_t *err, char *text, uint32_t len)
{
    copy_text(text, len, err->text);
    return (int32_t)err->code;
}

uint32_t es_arena_bytes_for_blob(const uint8_t *blob, uint32_t len)
{
    es_model_t m;
    es_error_t err;
    if (es_model_parse(&m, blob, len, &err) != ES_OK) {
        return 0;
    }
    return es_engine_arena_bytes(&m);
}

int32_t es_blob_info(const uint8_t *blob, uint32_t len, uint32_t *info, uint32_t info_len)
{
    es_model_t m;
    es_error_t err;
    es_status_t st = es_model_parse(&m, blob, len, &err);
    if (st != ES_OK) {
        return (int32_t)st;
    }
    uint32_t vals[7 + ES_MAX_LAYERS];
    vals[0] = m.input_size;
    vals[1] = (uint32_t)m.input_kind;
    vals[2] = m.timesteps;
    vals[3] = (uint32_t)m.decoding;
    vals[4] = m.n_layers;
    vals[5] = es_engine_arena_bytes(&m);
    vals[6] = m.layers[m.n_layers - 1u].size;
    for (uint32_t l = 0; l < m.n_layers; ++l) {
        vals[7u + l] = m.layers[l].size;
    }
    for (uint32_t i = 0; i < info_len && i < 7u + m.n_layers; ++i) {
        info[i] = vals[i];
    }
    return ES_OK;
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
        uint8_t *row = block + step * size;
        for (uint32_t i = 0; i < e->n_spk[l]; ++i) {
            row[e->spk[l][i]] = 1u;
        }
        block += (uint32_t)m->timesteps * size;
    }
}

/* One inference on a ready engine; writes this input's outputs. */
static es_status_t run_one(es_engine_t *e, const es_input_t *in, int64_t *scores,
                           int32_t *prediction, uint64_t *counters, uint8_t *raster,
                           int32_t *final_u, int32_t *final_v, int32_t *final_th,
                           uint64_t *cycles, es_error_t *err)
{
    const es_model_t *m = e->model;
    uint32_t neurons = 0;
    for (uint32_t l = 0; l < m->n_layers; ++l) {
        neurons += m->layers[l].size;
    }
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
    if (cycles != NULL) {
        *cycles = res.cycles;
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
    for (uint32_t l = 0; l < m->n_layers; ++l) {
        const uint32_t size = m->layers[l].size;
        if (final_u != NULL) {
            memcpy(final_u + off, e->st[l].u, 4u * size);
        }
        if (final_v != NULL) {
            memcpy(final_v + off, e->st[l].v, 4u * size);
        }
        if (final_th != NULL) {
            if (e->st[l].th != NULL) {
                memcpy(final_th + off, e->st[l].th, 4u * size);
            } else {
                memset(final_th + off, 0, 4u * size);
            }
        }
        off += size;
    }
    return ES_OK;
}

/* Set up the engine on a parsed model, the arena and its cycle counter. */
static es_status_t open_engine(const es_model_t *m, es_engine_t *e, void *arena,
                               uint32_t arena_bytes, es_cycle_fn cycle_fn, void *cycle_ctx,
                               const int64_t *scores, es_error_t *err)
{
    es_status_t st = es_engine_init(e, m, arena, arena_bytes, err);
    if (st != ES_OK) {
        return st;
    }
    if (cycle_fn != NULL) {
        es_engine_set_cycle_counter(e, cycle_fn, cycle_ctx, ES_CYCLES_NONE);
    }
    if (scores == NULL) {
        es_error_set(err, ES_ERR_INTERNAL, 0, "no scores buffer");
        return ES_ERR_INTERNAL;
    }
    return ES_OK;
}

size_t es_parsed_model_bytes(void)
{
    return sizeof(es_model_t);
}

int32_t es_parse_blob(void *model, uint32_t model_bytes, const uint8_t *blob, uint32_t len,
                      char *err_text, uint32_t err_len)
{
    es_error_t err;
    copy_text(err_text, err_len, "");
    if (model == NULL || model_bytes < sizeof(es_model_t) || ((uintptr_t)model & 7u) != 0u) {
        copy_text(err_text, err_len, "model buffer too small or not 8-byte aligned");
        return (int32_t)ES_ERR_INTERNAL;
    }
    if (es_model_parse((es_model_t *)model, blob, len, &err) != ES_OK) {
        return fail(&err, err_text, err_len);
    }
    return ES_OK;
}

int32_t es_run_parsed(const void *model, uint32_t n_inputs,
                      const uint32_t *events, const uint32_t *event_offsets,
                      const int32_t *values, uint32_t input_flags,
                      void *arena, uint32_t arena_bytes,
                      int64_t *scores, int32_t *predictions, uint64_t *counters,
                      uint8_t *rasters, int32_t *final_u, int32_t *final_v, int32_t *final_th,
                      uint64_t *cycles, es_cycle_fn cycle_fn, void *cycle_ctx,
                      uint32_t *failed_input, char *err_text, uint32_t err_len)
{
    const es_model_t *m = (const es_model_t *)model;
    es_engine_t e;
    es_error_t err;
    if (failed_input != NULL) {
        *failed_input = n_inputs;
    }
    copy_text(err_text, err_len, "");
    if (m == NULL || m->n_layers == 0u) {
        copy_text(err_text, err_len, "no parsed model");
        return (int32_t)ES_ERR_NO_MODEL;
    }
    if (open_engine(m, &e, arena, arena_bytes, cycle_fn, cycle_ctx, scores, &err) != ES_OK) {
        return fail(&err, err_text, err_len);
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
        if (m->input_kind == ES_INPUT_SPIKES) {
            if (event_offsets == NULL || event_offsets[i + 1u] < event_offsets[i]) {
                es_error_set(&err, ES_ERR_BAD_INPUT, i, "input %u: bad event offsets", i);
                if (failed_input != NULL) {
                    *failed_input = i;
                }
                return fail(&err, err_text, err_len);
            }
            in.events = events != NULL ? events + event_offsets[i] : NULL;
            in.n_events = event_offsets[i + 1u] - event_offsets[i];
        } else {
            in.values = values != NULL ? values + (size_t)i * per_values : NULL;
            in.n_values = values != NULL ? per_values : 0u;
            in.static_values = is_static;
        }
        es_status_t st = run_one(&e, &in, scores + (size_t)i * n_out,
                                 predictions ? predictions + i : NULL,
                                 counters ? counters + (size_t)i * ES_RUNNER_COUNTERS * m->n_layers : NULL,
                                 rasters ? rasters + (size_t)i * m->timesteps * neurons : NULL,
                                 final_u ? final_u + (size_t)i * neurons : NULL,
                                 final_v ? final_v + (size_t)i * neurons : NULL,
                                 final_th ? final_th + (size_t)i * neurons : NULL,
                                 cycles ? cycles + i : NULL, &err);
        if (st != ES_OK) {
            if (failed_input != NULL) {
                *failed_input = i;
            }
            return fail(&err, err_text, err_len);
        }
    }
    return ES_OK;
}

int32_t es_run_batch(const uint8_t *blob, uint32_t len, uint32_t n_inputs,
                     const uint32_t *events, const uint32_t *event_offsets,
                     const int32_t *values, uint32_t input_flags,
                     void *arena, uint32_t arena_bytes,
                     int64_t *scores, int32_t *predictions, uint64_t *counters,
                     uint8_t *rasters, int32_t *final_u, int32_t *final_v, int32_t *final_th,
                     uint64_t *cycles, es_cycle_fn cycle_fn, void *cycle_ctx,
                     uint32_t *failed_input, char *err_text, uint32_t err_len)
{
    es_model_t m;
    if (failed_input != NULL) {
        *failed_input = n_inputs;
    }
    const int32_t st = es_parse_blob(&m, sizeof(m), blob, len, err_text, err_len);
    if (st != ES_OK) {
        return st;
    }
    return es_run_parsed(&m, n_inputs, events, event_offsets, values, input_flags, arena,
                         arena_bytes, scores, predictions, counters, rasters, final_u, final_v,
                         final_th, cycles, cycle_fn, cycle_ctx, failed_input, err_text, err_len);
}

int32_t es_run_blob(const uint8_t *blob, uint32_t len,
                    const uint32_t *events, uint32_t n_events,
                    const int32_t *values, uint32_t n_values, uint32_t input_flags,
                    void *arena, uint32_t arena_bytes,
                    int64_t *scores, int32_t *prediction, uint64_t *counters,
                    uint8_t *raster, int32_t *final_u, int32_t *final_v, int32_t *final_th,
                    uint64_t *cycles, es_cycle_fn cycle_fn, void *cycle_ctx,
                    char *err_text, uint32_t err_len)
{
    es_model_t m;
    es_engine_t e;
    es_error_t err;
    const int32_t pst = es_parse_blob(&m, sizeof(m), blob, len, err_text, err_len);
    if (pst != ES_OK) {
        return pst;
    }
    if (open_engine(&m, &e, arena, arena_bytes, cycle_fn, cycle_ctx, scores, &err) != ES_OK) {
        return fail(&err, err_text, err_len);
    }
    es_input_t in = {events, n_events, values, n_values, (input_flags & ES_INPUT_STATIC) != 0u};
    es_status_t st = run_one(&e, &in, scores, prediction, counters, raster, final_u, final_v,
                             final_th, cycles, &err);
    return st == ES_OK ? (int32_t)ES_OK : fail(&err, err_text, err_len);
}
