/*
 * EdgeSpike core: the engine. Arena layout, reset, input checks, the time-step loop,
 * decoding and counters (docs/SEMANTICS.md). The kernels and the neuron live in
 * es_kernel_*.c and es_lif.c.
 *
 * Arena, per layer in order (every block padded to 4 bytes), exactly Model.state_bytes():
 *   u, v (int32 x size), th (int32 x size, adaptive only), ref (uint8 x size, refractory only),
 *   spk (uint16 x size), prev (uint16 x size, recurrent only), row_nnz (uint16 x fan_in),
 *   rec_nnz (uint16 x size, recurrent only);
 * then, at an 8-byte boundary, scores (int64 x output size).
 */
#include <string.h>

#include "es_kernel.h"
#include "es_lif.h"

static uint32_t pad4(uint32_t n)
{
    return (n + 3u) & ~3u;
}

static void *arena_at(uint8_t *base, uint32_t off)
{
    return base != NULL ? (void *)(base + off) : NULL;
}

/* Walks the arena layout, setting e's views (base NULL: only sums the sizes). */
static uint32_t layout(const es_model_t *m, es_engine_t *e, uint8_t *base)
{
    uint32_t off = 0;
    for (uint32_t l = 0; l < m->n_layers; ++l) {
        const es_layer_t *L = &m->layers[l];
        const uint32_t n = L->size;
        e->u[l] = (int32_t *)arena_at(base, off);
        off += 4u * n;
        e->v[l] = (int32_t *)arena_at(base, off);
        off += 4u * n;
        e->th[l] = NULL;
        if (L->n.adapt_step != 0u) {
            e->th[l] = (int32_t *)arena_at(base, off);
            off += 4u * n;
        }
        e->ref[l] = NULL;
        if (L->n.refractory != 0u) {
            e->ref[l] = (uint8_t *)arena_at(base, off);
            off += pad4(n);
        }
        e->spk[l] = (uint16_t *)arena_at(base, off);
        off += pad4(2u * n);
        e->prev[l] = NULL;
        if (L->recurrent) {
            e->prev[l] = (uint16_t *)arena_at(base, off);
            off += pad4(2u * n);
        }
        e->row_nnz[l] = (uint16_t *)arena_at(base, off);
        off += pad4(2u * L->w.fan_in);
        e->rec_nnz[l] = NULL;
        if (L->recurrent) {
            e->rec_nnz[l] = (uint16_t *)arena_at(base, off);
            off += pad4(2u * n);
        }
    }
    off = (off + 7u) & ~7u;
    e->scores = (int64_t *)arena_at(base, off);
    off += 8u * m->layers[m->n_layers - 1u].size;
    return off;
}

uint32_t es_engine_arena_bytes(const es_model_t *m)
{
    if (m == NULL || m->n_layers == 0u) {
        return 0;
    }
    es_engine_t scratch;
    return layout(m, &scratch, NULL);
}

es_status_t es_engine_init(es_engine_t *e, const es_model_t *m, void *arena,
                           uint32_t arena_bytes, es_error_t *err)
{
    if (e == NULL || m == NULL || m->n_layers == 0u) {
        return es_error_set(err, ES_ERR_NO_MODEL, 0, "no parsed model");
    }
    memset(e, 0, sizeof(*e));
    const uint32_t need = es_engine_arena_bytes(m);
    if (arena == NULL || arena_bytes < need) {
        return es_error_set(err, ES_ERR_MODEL_TOO_LARGE, need,
                            "model needs %u bytes of state, the arena has %u", need, arena_bytes);
    }
    if (((uintptr_t)arena & 7u) != 0u) {
        return es_error_set(err, ES_ERR_INTERNAL, 0, "the arena must be 8-byte aligned");
    }
    e->model = m;
    e->arena = (uint8_t *)arena;
    e->arena_bytes = arena_bytes;
    (void)layout(m, e, e->arena);
    for (uint32_t l = 0; l < m->n_layers; ++l) {
        const es_layer_t *L = &m->layers[l];
        if (L->w.encoding == ES_W_INT8) {
            es_kernel_int8_row_nnz(&L->w, e->row_nnz[l]);
        } else {
            es_kernel_ternary_row_nnz(&L->w, e->row_nnz[l]);
        }
        if (L->recurrent) {
            if (L->rec.encoding == ES_W_INT8) {
                es_kernel_int8_row_nnz(&L->rec, e->rec_nnz[l]);
            } else {
                es_kernel_ternary_row_nnz(&L->rec, e->rec_nnz[l]);
            }
        }
    }
    es_engine_reset(e);
    return ES_OK;
}

void es_engine_set_cycle_counter(es_engine_t *e, es_cycle_fn fn, void *ctx,
                                 es_cycle_source_t source)
{
    e->cycles = fn;
    e->cycles_ctx = ctx;
    e->cycle_source = fn != NULL ? source : ES_CYCLES_NONE;
}

void es_engine_set_step_hook(es_engine_t *e, es_step_hook_fn fn, void *ctx)
{
    e->hook = fn;
    e->hook_ctx = ctx;
}

void es_engine_reset(es_engine_t *e)
{
    const es_model_t *m = e->model;
    for (uint32_t l = 0; l < m->n_layers; ++l) {
        const uint32_t n = m->layers[l].size;
        memset(e->u[l], 0, 4u * n);
        memset(e->v[l], 0, 4u * n);
        if (e->th[l] != NULL) {
            memset(e->th[l], 0, 4u * n);
        }
        if (e->ref[l] != NULL) {
            memset(e->ref[l], 0, n);
        }
        e->n_spk[l] = 0;
        e->n_prev[l] = 0;
    }
    memset(e->scores, 0, 8u * m->layers[m->n_layers - 1u].size);
    e->t = 0;
}

es_status_t es_input_check(const es_model_t *m, const es_input_t *in, es_error_t *err)
{
    if (m == NULL || in == NULL) {
        return es_error_set(err, ES_ERR_INTERNAL, 0, "no model or input");
    }
    if (m->input_kind == ES_INPUT_SPIKES) {
        if (in->n_events != 0u && in->events == NULL) {
            return es_error_set(err, ES_ERR_BAD_INPUT, 0, "%u events announced, none given",
                                in->n_events);
        }
        for (uint32_t i = 0; i < in->n_events; ++i) {
            const uint32_t ev = in->events[i];
            const uint32_t t = ev >> 16, idx = ev & 0xFFFFu;
            if (t >= m->timesteps) {
                return es_error_set(err, ES_ERR_BAD_INPUT, i, "event %u: step %u >= timesteps %u",
                                    i, t, (uint32_t)m->timesteps);
            }
            if (idx >= m->input_size) {
                return es_error_set(err, ES_ERR_BAD_INPUT, i, "event %u: index %u >= input_size %u",
                                    i, idx, (uint32_t)m->input_size);
            }
            if (i > 0u && ev <= in->events[i - 1u]) {
                return es_error_set(err, ES_ERR_BAD_INPUT, i, "event %u: not after event %u (sort "
                                    "by step, then index; no duplicates)", i, i - 1u);
            }
        }
        return ES_OK;
    }
    const uint32_t want = (uint32_t)m->timesteps * m->input_size;
    if (in->n_values != want || (want != 0u && in->values == NULL)) {
        return es_error_set(err, ES_ERR_BAD_INPUT, in->n_values,
                            "%u input values; the model takes timesteps x input_size = %u",
                            in->n_values, want);
    }
    const int32_t lim = m->input_max_abs;
    for (uint32_t i = 0; i < want; ++i) {
        const int32_t x = in->values[i];
        if (x > lim || x < -lim) {
            return es_error_set(err, ES_ERR_BAD_INPUT, i, "value %u (step %u, index %u) is %d, "
                                "beyond input_max_abs %u", i, i / m->input_size,
                                i % m->input_size, x, (uint32_t)lim);
        }
    }
    return ES_OK;
}

/* One layer, one step. Input: rows (spike list / events) or values (first layer only). */
static void layer_step(es_engine_t *e, uint32_t l, const es_rows_t *rows, const int32_t *values,
                       es_counters_t *c)
{
    const es_layer_t *L = &e->model->layers[l];
    const uint32_t size = L->size;
    int32_t a_in[ES_CHUNK];
    int32_t acc[ES_CHUNK];
    int64_t acc64[ES_CHUNK];
    es_rows_t rec_rows = {NULL, NULL, 0};

    /* Counters: events and SynOps from the per-row non-zero counts. */
    const uint16_t *nnz = e->row_nnz[l];
    uint32_t events = 0;
    uint64_t synops = 0;
    if (values != NULL) {
        for (uint32_t j = 0; j < L->w.fan_in; ++j) {
            if (values[j] != 0) {
                events++;
                synops += nnz[j];
            }
        }
    } else {
        events = rows->n;
        for (uint32_t r = 0; r < rows->n; ++r) {
            synops += nnz[es_row_at(rows, r)];
        }
    }
    if (L->recurrent) {
        /* last step's spikes become the recurrent input; this step writes the other buffer */
        uint16_t *tmp = e->prev[l];
        e->prev[l] = e->spk[l];
        e->spk[l] = tmp;
        e->n_prev[l] = e->n_spk[l];
        rec_rows.idx16 = e->prev[l];
        rec_rows.n = e->n_prev[l];
        events += rec_rows.n;
        for (uint32_t r = 0; r < rec_rows.n; ++r) {
            synops += e->rec_nnz[l][rec_rows.idx16[r]];
        }
    }
    c->input_events += events;
    c->synops += synops;
    c->neuron_updates += size;

    const bool ff_active = values != NULL || rows->n != 0u;
    uint32_t n_spk = 0;
    for (uint32_t k0 = 0; k0 < size; k0 += ES_CHUNK) {
        const uint32_t k1 = size - k0 > ES_CHUNK ? k0 + ES_CHUNK : size;
        const uint32_t n = k1 - k0;
        if (!ff_active) {
            memset(a_in, 0, 4u * n);
        } else if (values != NULL) {
            memset(acc64, 0, 8u * n);
            if (L->w.encoding == ES_W_INT8) {
                es_kernel_int8_values(&L->w, values, k0, k1, acc64);
            } else {
                es_kernel_ternary_values(&L->w, values, k0, k1, acc64);
            }
            for (uint32_t k = 0; k < n; ++k) {
                a_in[k] = es_shift64(acc64[k], L->w.exp);
            }
        } else {
            if (L->w.encoding == ES_W_INT8) {
                memset(acc, 0, 4u * n);
                es_kernel_int8_spikes(&L->w, rows, k0, k1, acc);
            } else {
                es_kernel_ternary_spikes(&L->w, rows, k0, k1, acc);
            }
            for (uint32_t k = 0; k < n; ++k) {
                a_in[k] = es_shift32(acc[k], L->w.exp);
            }
        }
        if (rec_rows.n != 0u) {
            if (L->rec.encoding == ES_W_INT8) {
                memset(acc, 0, 4u * n);
                es_kernel_int8_spikes(&L->rec, &rec_rows, k0, k1, acc);
            } else {
                es_kernel_ternary_spikes(&L->rec, &rec_rows, k0, k1, acc);
            }
            for (uint32_t k = 0; k < n; ++k) {
                a_in[k] += es_shift32(acc[k], L->rec.exp);
            }
        }
        n_spk += es_lif_update(&L->n, e->u[l], e->v[l], e->th[l], e->ref[l], k0, k1, a_in,
                               e->spk[l] + n_spk);
    }
    e->n_spk[l] = (uint16_t)n_spk;
    c->spikes += n_spk;
}

/* One step of every layer; input as rows (spikes) or values. */
static void engine_step(es_engine_t *e, const es_rows_t *rows, const int32_t *values,
                        es_counters_t *counters)
{
    const es_model_t *m = e->model;
    es_rows_t in = *rows;
    for (uint32_t l = 0; l < m->n_layers; ++l) {
        const uint64_t c0 = e->cycles != NULL ? e->cycles(e->cycles_ctx) : 0u;
        layer_step(e, l, &in, l == 0u ? values : NULL, &counters[l]);
        if (e->cycles != NULL) {
            counters[l].cycles += e->cycles(e->cycles_ctx) - c0;
        }
        in.idx16 = e->spk[l];
        in.idx32 = NULL;
        in.n = e->n_spk[l];
    }
    /* decoding state of the output layer */
    const uint32_t last = m->n_layers - 1u;
    const uint16_t *spk = e->spk[last];
    const uint32_t n_spk = e->n_spk[last];
    int64_t *scores = e->scores;
    switch (m->decoding) {
    case ES_DECODE_SPIKE_COUNT:
        for (uint32_t i = 0; i < n_spk; ++i) {
            scores[spk[i]]++;
        }
        break;
    case ES_DECODE_FIRST_SPIKE:
        if (e->t < m->timesteps) {
            for (uint32_t i = 0; i < n_spk; ++i) {
                if (scores[spk[i]] == 0) {
                    scores[spk[i]] = (int64_t)m->timesteps - (int64_t)e->t;
                }
            }
        }
        break;
    case ES_DECODE_MEMBRANE_SUM:
        for (uint32_t k = 0; k < m->layers[last].size; ++k) {
            scores[k] += e->v[last][k];
        }
        break;
    case ES_DECODE_MEMBRANE_LAST:
    default:
        for (uint32_t k = 0; k < m->layers[last].size; ++k) {
            scores[k] = e->v[last][k];
        }
        break;
    }
    e->t++;
}

es_status_t es_engine_step(es_engine_t *e, const uint16_t *indices, uint16_t n_indices,
                           const int32_t *values, es_counters_t *counters)
{
    if (e == NULL || e->model == NULL || counters == NULL) {
        return ES_ERR_NO_MODEL;
    }
    const es_model_t *m = e->model;
    es_rows_t rows = {indices, NULL, n_indices};
    if (m->input_kind == ES_INPUT_VALUES) {
        if (values == NULL) {
            return ES_ERR_BAD_INPUT;
        }
        rows.n = 0;
        for (uint32_t j = 0; j < m->input_size; ++j) {
            if (values[j] > m->input_max_abs || values[j] < -(int32_t)m->input_max_abs) {
                return ES_ERR_BAD_INPUT;
            }
        }
    } else {
        if (n_indices != 0u && indices == NULL) {
            return ES_ERR_BAD_INPUT;
        }
        for (uint32_t i = 0; i < n_indices; ++i) {
            if (indices[i] >= m->input_size) {
                return ES_ERR_BAD_INPUT;
            }
        }
        values = NULL;
    }
    engine_step(e, &rows, values, counters);
    return ES_OK;
}

es_status_t es_engine_run(es_engine_t *e, const es_input_t *in, es_result_t *out,
                          es_error_t *err)
{
    if (e == NULL || e->model == NULL) {
        return es_error_set(err, ES_ERR_NO_MODEL, 0, "the engine has no model");
    }
    if (out == NULL || out->scores == NULL) {
        return es_error_set(err, ES_ERR_INTERNAL, 0, "no result buffer");
    }
    const es_model_t *m = e->model;
    es_status_t st = es_input_check(m, in, err);
    if (st != ES_OK) {
        return st;
    }
    const uint32_t last = m->n_layers - 1u;
    memset(out->layers, 0, sizeof(out->layers));
    out->n_layers = m->n_layers;
    out->n_spike_events = 0;
    out->spikes_truncated = false;
    out->cycle_source = e->cycle_source;
    es_engine_reset(e);
    const uint64_t c0 = e->cycles != NULL ? e->cycles(e->cycles_ctx) : 0u;

    uint32_t next = 0; /* next unread event */
    for (uint32_t t = 0; t < m->timesteps; ++t) {
        es_rows_t rows = {NULL, NULL, 0};
        const int32_t *values = NULL;
        if (m->input_kind == ES_INPUT_SPIKES) {
            const uint32_t first = next;
            while (next < in->n_events && (in->events[next] >> 16) == t) {
                next++;
            }
            rows.idx32 = in->events + first;
            rows.n = next - first;
        } else {
            values = in->values + t * m->input_size;
        }
        engine_step(e, &rows, values, out->layers);
        for (uint32_t i = 0; i < e->n_spk[last]; ++i) {
            if (out->n_spike_events < out->spike_capacity) {
                out->spike_events[out->n_spike_events++] = (t << 16) | e->spk[last][i];
            } else if (out->spike_capacity != 0u) {
                out->spikes_truncated = true;
            }
        }
        if (e->hook != NULL) {
            e->hook(e->hook_ctx, e, t);
        }
    }
    out->cycles = e->cycles != NULL ? e->cycles(e->cycles_ctx) - c0 : 0u;

    const uint32_t n_out = m->layers[last].size;
    int32_t best = 0;
    for (uint32_t k = 0; k < n_out; ++k) {
        out->scores[k] = e->scores[k];
        if (e->scores[k] > e->scores[best]) {
            best = (int32_t)k; /* strict: ties go to the lowest index */
        }
    }
    out->n_scores = (uint16_t)n_out;
    out->prediction = best;
    return ES_OK;
}

const int32_t *es_engine_u(const es_engine_t *e, uint8_t layer)
{
    return layer < e->model->n_layers ? e->u[layer] : NULL;
}

const int32_t *es_engine_v(const es_engine_t *e, uint8_t layer)
{
    return layer < e->model->n_layers ? e->v[layer] : NULL;
}

const int32_t *es_engine_th(const es_engine_t *e, uint8_t layer)
{
    return layer < e->model->n_layers ? e->th[layer] : NULL;
}
