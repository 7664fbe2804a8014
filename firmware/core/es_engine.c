/*
 * EdgeSpike core: the engine. Arena layout, reset, input checks, the time-step loop,
 * decoding and counters (docs/SEMANTICS.md). The kernels and the neuron live in
 * es_kernel_*.c and es_lif.c.
 *
 * Arena, per layer in order (every block padded to 4 bytes), exactly Model.state_bytes():
 *   u, v (int32 x size), th (int32 x size, adaptive only), ref (uint8 x size, refractory only),
 *   spk (uint16 x size), prev (uint16 x size, recurrent only), row_nnz (uint16 x fan_in),
 *   rec_nnz (uint16 x size, recurrent only);
 * then, at an 8-byte boundary, scores (int64 x output size); then, for INPUT_VALUES models,
 * layer 0's input of a static input (int32 x layer 0 size rounded up to 4: the kernels write
 * whole blocks of 4), for INPUT_SPIKES models the indices of one step's input events (uint16 x
 * input size).
 *
 * Per step and layer the cost outside the kernels and the neuron update is a few dozen
 * instructions: SynOps are summed from per-row counts, a layer with no input and all state
 * at zero (no bias) is skipped (nothing could change), and the cycle counter is read once per
 * layer (ES_LAYER_CYCLES). A static input's layer-0 sums are computed once per inference.
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
        e->st[l].u = (int32_t *)arena_at(base, off);
        off += 4u * n;
        e->st[l].v = (int32_t *)arena_at(base, off);
        off += 4u * n;
        e->st[l].th = NULL;
        if (L->n.adapt_step != 0u) {
            e->st[l].th = (int32_t *)arena_at(base, off);
            off += 4u * n;
        }
        e->st[l].ref = NULL;
        if (L->n.refractory != 0u) {
            e->st[l].ref = (uint8_t *)arena_at(base, off);
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
    e->static_sum = NULL;
    e->in_list = NULL;
    if (m->input_kind == ES_INPUT_VALUES) {
        e->static_sum = (int32_t *)arena_at(base, off);
        off += 4u * pad4(m->layers[0].size);
    } else {
        e->in_list = (uint16_t *)arena_at(base, off);
        off += pad4(2u * m->input_size);
    }
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
        es_lif_plan(&L->n, (L->flags & ES_LAYER_SMALL_INPUT) != 0u, e->st[l].th != NULL,
                    e->st[l].ref != NULL, &e->lif[l]);
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
        memset(e->st[l].u, 0, 4u * n);
        memset(e->st[l].v, 0, 4u * n);
        if (e->st[l].th != NULL) {
            memset(e->st[l].th, 0, 4u * n);
        }
        if (e->st[l].ref != NULL) {
            memset(e->st[l].ref, 0, n);
        }
        e->n_spk[l] = 0;
        e->n_prev[l] = 0;
        e->quiet[l] = true;
    }
    memset(e->scores, 0, 8u * m->layers[m->n_layers - 1u].size);
    e->t = 0;
    e->static_ready = false;
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
    const uint32_t want = in->static_values ? m->input_size : (uint32_t)m->timesteps * m->input_size;
    if (in->n_values != want || (want != 0u && in->values == NULL)) {
        return es_error_set(err, ES_ERR_BAD_INPUT, in->n_values,
                            in->static_values ? "%u static input values; the model takes input_size = %u"
                                              : "%u input values; the model takes timesteps x input_size = %u",
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

/* Layer l's feed-forward input a_in << 6 of neurons [k0, k0 + n), from values or the listed
 * rows, into a6. */
static void ff_input(const es_layer_t *L, const es_rows_t *rows, const int32_t *values,
                     uint32_t k0, uint32_t n, int32_t *a6)
{
    if (values != NULL) {
        if ((L->flags & ES_LAYER_SUM32) == 0u) {
            es_kernel_values64(&L->w, values, k0, n, a6);
        } else if (L->w.encoding == ES_W_INT8) {
            es_kernel_int8_values(&L->w, values, k0, n, a6);
        } else {
            es_kernel_ternary_values(&L->w, values, k0, n, a6);
        }
    } else if (L->w.encoding == ES_W_INT8) {
        es_kernel_int8_spikes(&L->w, rows, k0, n, a6);
    } else {
        es_kernel_ternary_spikes(&L->w, rows, k0, n, a6);
    }
}

/* Events and SynOps of one step's feed-forward input (32-bit sums: at most fan_in x fan_out,
 * below 2^24, per step). */
static void count_input(const es_layer_t *L, const uint16_t *nnz, const es_rows_t *rows,
                        const int32_t *values, uint32_t *events, uint64_t *synops)
{
    uint32_t ev = 0, so = 0;
    if (values != NULL) {
        for (uint32_t j = 0; j < L->w.fan_in; ++j) {
            if (values[j] != 0) {
                ev++;
                so += nnz[j];
            }
        }
    } else {
        ev = rows->n;
        for (const uint16_t *p = rows->idx, *end = rows->idx + rows->n; p != end; ++p) {
            so += nnz[*p];
        }
    }
    *events = ev;
    *synops = so;
}

/* One layer, one step. Input: rows (spike list / events) or values (first layer only);
 * static_in: values are the same as at the previous step of this inference. */
static void layer_step(es_engine_t *e, uint32_t l, const es_rows_t *rows, const int32_t *values,
                       bool static_in, es_counters_t *c)
{
    const es_layer_t *L = &e->model->layers[l];
    const uint32_t size = L->size;
    int32_t buf[ES_CHUNK];
    int32_t rbuf[ES_CHUNK];
    es_rows_t rec_rows = {NULL, 0};

    uint32_t events;
    uint64_t synops;
    if (static_in && e->static_ready) {
        events = e->static_events;
        synops = e->static_synops;
    } else {
        count_input(L, e->row_nnz[l], rows, values, &events, &synops);
        if (static_in) { /* kept for the next steps of the static input */
            e->static_events = events;
            e->static_synops = synops;
        }
    }
    if (L->recurrent) {
        /* last step's spikes become the recurrent input; this step writes the other buffer */
        uint16_t *tmp = e->prev[l];
        e->prev[l] = e->spk[l];
        e->spk[l] = tmp;
        e->n_prev[l] = e->n_spk[l];
        rec_rows.idx = e->prev[l];
        rec_rows.n = e->n_prev[l];
        events += rec_rows.n;
        for (uint32_t r = 0; r < rec_rows.n; ++r) {
            synops += e->rec_nnz[l][rec_rows.idx[r]];
        }
    }
    c->input_events += events;
    c->synops += synops;
    c->neuron_updates += size;

    const bool ff_active = values != NULL || rows->n != 0u;
    const bool has_bias = L->n.bias_mant != 0 || L->n.bias_pn != NULL;
    if (!ff_active && rec_rows.n == 0u && e->quiet[l] && !has_bias) {
        e->n_spk[l] = 0; /* all state zero, no input: the step cannot change anything */
        return;
    }
    if (static_in && !e->static_ready) {
        /* the static input's layer-0 input, once per inference */
        for (uint32_t k0 = 0; k0 < size; k0 += ES_CHUNK) {
            const uint32_t n = size - k0 > ES_CHUNK ? ES_CHUNK : size - k0;
            ff_input(L, rows, values, k0, n, e->static_sum + k0);
        }
        e->static_ready = true;
    }

    uint32_t n_spk = 0;
    bool quiet = true;
    if (size <= ES_CHUNK && rec_rows.n == 0u) {
        /* the common case: one chunk, feed-forward input only */
        const int32_t *a6 = NULL;
        if (static_in) {
            a6 = e->static_sum;
        } else if (ff_active) {
            ff_input(L, rows, values, 0, size, buf);
            a6 = buf;
        }
        n_spk = es_lif_run(&e->lif[l], &L->n, &e->st[l], 0, size, a6, e->spk[l], &quiet,
                           e->keep_u);
    } else {
        for (uint32_t k0 = 0; k0 < size; k0 += ES_CHUNK) {
            const uint32_t k1 = size - k0 > ES_CHUNK ? k0 + ES_CHUNK : size;
            const uint32_t n = k1 - k0;
            const int32_t *a6 = NULL;
            if (static_in) {
                a6 = e->static_sum + k0;
            } else if (ff_active) {
                ff_input(L, rows, values, k0, n, buf);
                a6 = buf;
            }
            if (rec_rows.n != 0u) {
                if (L->rec.encoding == ES_W_INT8) {
                    es_kernel_int8_spikes(&L->rec, &rec_rows, k0, n, rbuf);
                } else {
                    es_kernel_ternary_spikes(&L->rec, &rec_rows, k0, n, rbuf);
                }
                if (a6 != NULL) {
                    for (uint32_t k = 0; k < n; ++k) {
                        rbuf[k] += a6[k];
                    }
                }
                a6 = rbuf;
            }
            bool q;
            n_spk += es_lif_run(&e->lif[l], &L->n, &e->st[l], k0, k1, a6, e->spk[l] + n_spk, &q,
                                e->keep_u);
            quiet = quiet && q;
        }
    }
    e->n_spk[l] = (uint16_t)n_spk;
    e->quiet[l] = quiet;
    c->spikes += n_spk;
}

/* One step of every layer; input as rows (spikes) or values. */
static void engine_step(es_engine_t *e, const es_rows_t *rows, const int32_t *values,
                        bool static_in, es_counters_t *counters)
{
    const es_model_t *m = e->model;
    es_rows_t in = *rows;
#if ES_LAYER_CYCLES
    uint64_t c_prev = e->cycles != NULL ? e->cycles(e->cycles_ctx) : 0u;
#endif
    for (uint32_t l = 0; l < m->n_layers; ++l) {
        layer_step(e, l, &in, l == 0u ? values : NULL, l == 0u && static_in, &counters[l]);
#if ES_LAYER_CYCLES
        if (e->cycles != NULL) {
            const uint64_t now = e->cycles(e->cycles_ctx);
            counters[l].cycles += now - c_prev;
            c_prev = now;
        }
#endif
        in.idx = e->spk[l];
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
            scores[k] += e->st[last].v[k];
        }
        break;
    case ES_DECODE_MEMBRANE_LAST:
    default:
        for (uint32_t k = 0; k < m->layers[last].size; ++k) {
            scores[k] = e->st[last].v[k];
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
    es_rows_t rows = {indices, n_indices};
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
    e->keep_u = true; /* a stream's state can be read after any step */
    engine_step(e, &rows, values, false, counters);
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
        es_rows_t rows = {e->in_list, 0};
        const int32_t *values = NULL;
        if (m->input_kind == ES_INPUT_SPIKES) {
            /* this step's events as a spike list (checked: sorted, indices in range) */
            uint32_t n = 0;
            for (; next < in->n_events && (in->events[next] >> 16) == t; ++next) {
                e->in_list[n++] = (uint16_t)in->events[next];
            }
            rows.n = n;
        } else {
            values = in->static_values ? in->values : in->values + t * m->input_size;
        }
        e->keep_u = t + 1u == m->timesteps; /* the final state is read back */
        engine_step(e, &rows, values, in->static_values, out->layers);
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
    return layer < e->model->n_layers ? e->st[layer].u : NULL;
}

const int32_t *es_engine_v(const es_engine_t *e, uint8_t layer)
{
    return layer < e->model->n_layers ? e->st[layer].v : NULL;
}

const int32_t *es_engine_th(const es_engine_t *e, uint8_t layer)
{
    return layer < e->model->n_layers ? e->st[layer].th : NULL;
}
