/* Streaming: windows, decisions and the delta encoder over es_engine_step. See es_stream.h. */
#include "es_stream.h"

#include <string.h>

#include "es_internal.h"

uint16_t es_delta_encode(uint16_t channels, const int32_t *thr, int32_t *ref,
                         const int32_t *samples, uint16_t *out)
{
    uint16_t n = 0;
    uint16_t c;
    /* UP events first (indices 0..C-1), then DOWN (C..2C-1): increasing order. */
    for (c = 0; c < channels; ++c) {
        int64_t d = (int64_t)samples[c] - (int64_t)ref[c];
        if (d >= (int64_t)thr[c]) {
            out[n++] = c;
            ref[c] += thr[c];
        }
    }
    for (c = 0; c < channels; ++c) {
        int64_t d = (int64_t)samples[c] - (int64_t)ref[c];
        /* a channel that went UP this step has d >= 0 now: never both */
        if (d <= -(int64_t)thr[c]) {
            out[n++] = (uint16_t)(channels + c);
            ref[c] -= thr[c];
        }
    }
    return n;
}

es_status_t es_stream_start(es_stream_t *s, es_engine_t *e, const es_stream_cfg_t *cfg,
                            es_error_t *err)
{
    const es_model_t *m;
    uint32_t window, hop, n_out;
    if (s == NULL || e == NULL || e->model == NULL || cfg == NULL) {
        return es_error_set(err, ES_ERR_NO_MODEL, 0, "no model to stream on");
    }
    m = e->model;
    n_out = m->layers[m->n_layers - 1u].size;
    window = cfg->window != 0u ? cfg->window
                               : (m->stream_window != 0u ? m->stream_window : m->timesteps);
    hop = cfg->hop != 0u ? cfg->hop : (m->stream_hop != 0u ? m->stream_hop : window);
    if (hop > window) {
        return es_error_set(err, ES_ERR_BAD_INPUT, hop, "stream hop %u larger than window %u",
                            hop, window);
    }
    memset(s, 0, sizeof(*s));
    s->engine = e;
    s->window = (uint16_t)window;
    s->hop = (uint16_t)hop;
    s->sliding = hop < window;
    if (s->sliding) {
        if (m->decoding == ES_DECODE_SPIKE_COUNT) {
            if ((uint64_t)window * n_out > ES_STREAM_RING_BYTES) {
                return es_error_set(err, ES_ERR_MODEL_TOO_LARGE, ES_STREAM_RING_BYTES,
                                    "sliding window %u x %u outputs exceeds the %u-byte ring",
                                    window, n_out, (uint32_t)ES_STREAM_RING_BYTES);
            }
        } else if (m->decoding != ES_DECODE_MEMBRANE_LAST) {
            return es_error_set(err, ES_ERR_UNSUPPORTED, (uint32_t)m->decoding,
                                "sliding windows take spike-count or membrane-last decoding");
        }
    } else if (m->decoding == ES_DECODE_FIRST_SPIKE && window != m->timesteps) {
        return es_error_set(err, ES_ERR_UNSUPPORTED, window,
                            "first-spike decoding needs window == timesteps (%u)",
                            (uint32_t)m->timesteps);
    }
    if (cfg->raw) {
        uint16_t c;
        if (m->input_kind != ES_INPUT_SPIKES || cfg->channels == 0u ||
            cfg->channels > ES_STREAM_MAX_CHANNELS ||
            (uint32_t)cfg->channels * 2u != m->input_size || cfg->thresholds == NULL) {
            return es_error_set(err, ES_ERR_BAD_INPUT, cfg->channels,
                                "raw samples need a spike model with input_size = 2 x channels "
                                "(<= %u channels) and one threshold per channel",
                                (uint32_t)ES_STREAM_MAX_CHANNELS);
        }
        for (c = 0; c < cfg->channels; ++c) {
            if (cfg->thresholds[c] < 1) {
                return es_error_set(err, ES_ERR_BAD_INPUT, c, "delta threshold %u below 1",
                                    (uint32_t)c);
            }
            s->thr[c] = cfg->thresholds[c];
        }
        s->raw = true;
        s->channels = cfg->channels;
    }
    es_engine_reset(e);
    return ES_OK;
}

static int32_t argmax(const int64_t *scores, uint32_t n)
{
    uint32_t k, best = 0;
    for (k = 1; k < n; ++k) {
        if (scores[k] > scores[best]) {
            best = k; /* strict: ties go to the lowest index */
        }
    }
    return (int32_t)best;
}

es_status_t es_stream_step(es_stream_t *s, const uint16_t *indices, uint16_t n_indices,
                           const int32_t *values, const int32_t *samples, int64_t *scores,
                           es_decision_t *d, bool *decided)
{
    es_engine_t *e = s->engine;
    const es_model_t *m = e->model;
    const uint32_t last = m->n_layers - 1u;
    const uint32_t n_out = m->layers[last].size;
    es_status_t st;
    uint32_t k;
    *decided = false;
    if (!s->sliding && s->in_window == 0u) {
        es_engine_reset(e); /* per-window: every window starts from reset */
    }
    if (s->raw) {
        if (samples == NULL) {
            return ES_ERR_BAD_INPUT;
        }
        if ((!s->sliding && s->in_window == 0u) || (s->sliding && s->steps == 0u)) {
            memcpy(s->ref, samples, (size_t)s->channels * sizeof(int32_t));
        }
        n_indices = es_delta_encode(s->channels, s->thr, s->ref, samples, s->enc);
        indices = s->enc;
    } else if (m->input_kind == ES_INPUT_SPIKES) {
        for (k = 1; k < n_indices; ++k) {
            if (indices[k] <= indices[k - 1u]) {
                return ES_ERR_BAD_INPUT;
            }
        }
    }
    st = es_engine_step(e, indices, n_indices, values, s->counters);
    if (st != ES_OK) {
        return st;
    }
    if (s->sliding && m->decoding == ES_DECODE_SPIKE_COUNT) {
        uint8_t *row = s->ring + (s->steps % s->window) * n_out;
        memset(row, 0, n_out);
        for (k = 0; k < e->n_spk[last]; ++k) {
            row[e->spk[last][k]] = 1u;
        }
    }
    s->steps++;
    if (!s->sliding) {
        if (++s->in_window < s->window) {
            return ES_OK;
        }
        s->in_window = 0;
        memcpy(scores, e->scores, (size_t)n_out * sizeof(int64_t));
    } else {
        if (s->steps < s->window || (s->steps - s->window) % s->hop != 0u) {
            return ES_OK;
        }
        if (m->decoding == ES_DECODE_SPIKE_COUNT) {
            uint32_t r;
            memset(scores, 0, (size_t)n_out * sizeof(int64_t));
            for (r = 0; r < s->window; ++r) {
                const uint8_t *row = s->ring + r * n_out;
                for (k = 0; k < n_out; ++k) {
                    scores[k] += row[k];
                }
            }
        } else { /* membrane last */
            for (k = 0; k < n_out; ++k) {
                scores[k] = e->st[last].v[k];
            }
        }
    }
    d->index = s->decisions++;
    d->end_step = s->steps - 1u;
    d->n_scores = (uint16_t)n_out;
    d->prediction = argmax(scores, n_out);
    *decided = true;
    return ES_OK;
}
