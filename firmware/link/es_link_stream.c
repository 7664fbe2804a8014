/* Streaming: StreamStart, EventBatch, StreamStop, the paced step loop (es_link_poll) and the
 * OutputBatches it sends (FRAMING.md "Streaming"). */
#include "es_link_internal.h"

#include <string.h>

/* Send the OutputBatch being filled (seq given), then start a fresh one. */
static void stream_send(es_link_t *l, uint32_t seq, bool final)
{
    es_link_stream_t *s = &l->stream;
    edgespike_OutputBatch *o = &s->out;
    o->out_seq = ++s->out_seq;
    o->acked_seq = s->acked_seq;
    o->credit_limit = s->acked_seq + ES_STREAM_SLOTS;
    o->device_time = es_link_now(l);
    o->steps_run = s->engine.steps;
    o->items_received = s->items_received;
    o->batches_received = s->batches_received;
    o->stalls = s->stalls;
    o->final = final;
    memset(&l->resp, 0, sizeof(l->resp));
    l->resp.seq = seq;
    l->resp.session = s->session;
    l->resp.which_body = edgespike_Frame_output_batch_tag;
    l->resp.body.output_batch = *o;
    es_link_send_resp(l);
    memset(o, 0, sizeof(*o));
    o->spikes_first_step = s->engine.steps;
    s->flush = false;
}

/* End the stream (queued input is dropped). */
void es_link_stream_close(es_link_t *l)
{
    l->stream.open = false;
    l->stream.q_count = 0;
}

/* End an open stream for another reason than StreamStop: tell the host (a final
 * OutputBatch, if anyone listens) and count it. */
void es_link_stream_abort(es_link_t *l)
{
    if (l->stream.open) {
        l->stats.streams_aborted++;
        stream_send(l, l->stream.req_seq, true);
        es_link_stream_close(l);
    }
}

void es_link_on_stream_start(es_link_t *l, uint32_t seq, const edgespike_StreamStart *q)
{
    es_link_stream_t *s = &l->stream;
    es_slot_t *a = &l->slots[l->active];
    es_stream_cfg_t cfg;
    es_status_t st;
    uint32_t i;
    if (!l->loaded) {
        es_link_send_error(l, seq, ES_ERR_NO_MODEL, "no model committed; upload one first", 0);
        return;
    }
    if (q->window > 65535u || q->hop > 65535u) {
        es_link_send_error(l, seq, ES_ERR_BAD_INPUT, "window and hop take at most 65535 steps", 0);
        return;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.window = (uint16_t)q->window;
    cfg.hop = (uint16_t)q->hop;
    cfg.raw = q->raw_samples;
    if (q->raw_samples) {
        cfg.channels = (uint16_t)q->delta_thresholds_count;
        for (i = 0; i < q->delta_thresholds_count && i < ES_STREAM_MAX_CHANNELS; i++) {
            s->thresholds[i] = q->delta_thresholds[i];
        }
        cfg.thresholds = s->thresholds;
    }
    es_link_clear_err(l);
    st = es_stream_start(&s->engine, &a->engine, &cfg, &l->err);
    if (st != ES_OK) {
        s->open = false;
        es_link_send_engine_error(l, seq, st);
        return;
    }
    s->open = true;
    s->session = l->session;
    s->record_spikes = q->record_spikes;
    s->req_seq = seq;
    s->next_batch_seq = 1;
    s->next_step = 0;
    s->acked_seq = 0;
    s->out_seq = 0;
    s->items_received = 0;
    s->batches_received = 0;
    s->stalls = 0;
    s->clock_started = false;
    s->q_head = 0;
    s->q_count = 0;
    s->q_step = 0;
    s->q_item = 0;
    s->step_us = q->step_us != 0u ? q->step_us : a->model.dt_us;
    s->free_run = q->free_run || s->step_us == 0u || l->port.cycles == NULL ||
                  l->port.cycles_per_us == 0u;
    if (s->free_run) {
        s->step_us = 0;
    }
    s->period = (uint64_t)s->step_us * l->port.cycles_per_us;
    s->idle_timeout = (uint64_t)(q->idle_timeout_ms != 0u ? q->idle_timeout_ms
                                                          : ES_STREAM_IDLE_TIMEOUT_MS) *
                      1000u * l->port.cycles_per_us;
    s->t0 = es_link_now(l);
    s->last_rx = s->t0;
    l->stats.streams_started++;
    memset(&s->out, 0, sizeof(s->out));
    s->out.window = s->engine.window;
    s->out.hop = s->engine.hop;
    s->out.step_us = s->step_us;
    s->out.max_batch_steps = ES_STREAM_BATCH_STEPS;
    s->out.max_batch_items = ES_STREAM_BATCH_ITEMS;
    stream_send(l, seq, false);
}

/* Refuse an EventBatch: an Error, and the stream ends (the host must start again). */
static void batch_refused(es_link_t *l, uint32_t seq, es_status_t code, const char *text,
                          uint32_t detail)
{
    es_link_send_error(l, seq, code, text, detail);
    l->stats.streams_aborted++;
    es_link_stream_close(l);
}

void es_link_on_event_batch(es_link_t *l, uint32_t seq, const edgespike_EventBatch *b)
{
    es_link_stream_t *s = &l->stream;
    const es_model_t *m = &l->slots[l->active].model;
    es_batch_t *slot;
    uint32_t n_items, i, want;
    if (!s->open) {
        es_link_send_error(l, seq, ES_ERR_NOT_STREAMING, "EventBatch without an open stream", 0);
        return;
    }
    if (b->batch_seq != s->next_batch_seq) {
        l->stats.stream_gaps++;
        batch_refused(l, seq, ES_ERR_STREAM_GAP, "EventBatch out of sequence; expected batch_seq "
                      "in detail", s->next_batch_seq);
        return;
    }
    if (b->batch_seq > s->acked_seq + ES_STREAM_SLOTS || s->q_count >= ES_STREAM_SLOTS) {
        batch_refused(l, seq, ES_ERR_NO_CREDIT, "EventBatch beyond the granted credit",
                      s->acked_seq + ES_STREAM_SLOTS);
        return;
    }
    if (b->first_step != s->next_step) {
        l->stats.stream_gaps++;
        batch_refused(l, seq, ES_ERR_STREAM_GAP, "EventBatch.first_step is not the next step "
                      "(in detail)", s->next_step);
        return;
    }
    if (b->n_steps < 1u || b->n_steps > ES_STREAM_BATCH_STEPS) {
        batch_refused(l, seq, ES_ERR_BAD_INPUT, "EventBatch.n_steps outside 1..max_batch_steps",
                      ES_STREAM_BATCH_STEPS);
        return;
    }
    if (s->engine.raw) {
        want = b->n_steps * s->engine.channels;
        if (b->samples_count != want || b->events_count != 0u || b->values_count != 0u) {
            batch_refused(l, seq, ES_ERR_BAD_INPUT, "raw stream: samples must be n_steps x "
                          "channels (in detail)", want);
            return;
        }
        n_items = b->samples_count;
    } else if (m->input_kind == ES_INPUT_VALUES) {
        want = b->n_steps * m->input_size;
        if (b->values_count != want || b->events_count != 0u || b->samples_count != 0u) {
            batch_refused(l, seq, ES_ERR_BAD_INPUT, "values must be n_steps x input_size "
                          "(in detail)", want);
            return;
        }
        for (i = 0; i < want; i++) {
            int32_t v = b->values[i];
            if (v > (int32_t)m->input_max_abs || v < -(int32_t)m->input_max_abs) {
                batch_refused(l, seq, ES_ERR_BAD_INPUT, "value above input_max_abs (item in "
                              "detail)", i);
                return;
            }
        }
        n_items = want;
    } else {
        if (b->values_count != 0u || b->samples_count != 0u) {
            batch_refused(l, seq, ES_ERR_BAD_INPUT, "spike model: EventBatch takes events", 0);
            return;
        }
        for (i = 0; i < b->events_count; i++) {
            uint32_t ev = b->events[i];
            if ((ev >> 16) >= b->n_steps || (ev & 0xFFFFu) >= m->input_size ||
                (i > 0u && ev <= b->events[i - 1u])) {
                batch_refused(l, seq, ES_ERR_BAD_INPUT, "event out of range or order (item in "
                              "detail)", i);
                return;
            }
        }
        n_items = b->events_count;
    }
    slot = &s->q[(s->q_head + s->q_count) % ES_STREAM_SLOTS];
    slot->batch_seq = b->batch_seq;
    slot->n_steps = b->n_steps;
    slot->n_items = n_items;
    slot->arrival = es_link_now(l);
    slot->host_time_us = b->host_time_us;
    if (s->engine.raw) {
        memcpy(slot->items, b->samples, n_items * 4u);
    } else if (m->input_kind == ES_INPUT_VALUES) {
        memcpy(slot->items, b->values, n_items * 4u);
    } else {
        memcpy(slot->items, b->events, n_items * 4u);
    }
    s->q_count++;
    s->next_batch_seq++;
    s->next_step += b->n_steps;
    s->items_received += n_items;
    s->batches_received++;
    s->last_rx = slot->arrival;
    l->stats.stream_batches++;
    l->stats.stream_items += n_items;
}

void es_link_on_stream_stop(es_link_t *l, uint32_t seq)
{
    if (!l->stream.open) {
        es_link_send_error(l, seq, ES_ERR_NOT_STREAMING, "StreamStop without an open stream", 0);
        return;
    }
    stream_send(l, seq, true);
    es_link_stream_close(l);
}

/* Run the head batch's next step. */
static void stream_step(es_link_t *l)
{
    es_link_stream_t *s = &l->stream;
    const es_model_t *m = &l->slots[l->active].model;
    es_batch_t *b = &s->q[s->q_head];
    const int32_t *values = NULL;
    const int32_t *samples = NULL;
    uint16_t n_idx = 0;
    es_decision_t d;
    bool decided = false;
    es_status_t st;
    uint32_t last = (uint32_t)m->n_layers - 1u;
    uint32_t k, step = s->engine.steps;
    if (s->engine.raw) {
        samples = (const int32_t *)b->items + s->q_step * s->engine.channels;
    } else if (m->input_kind == ES_INPUT_VALUES) {
        values = (const int32_t *)b->items + s->q_step * m->input_size;
    } else {
        while (s->q_item < b->n_items && (b->items[s->q_item] >> 16) == s->q_step) {
            s->step_idx[n_idx++] = (uint16_t)(b->items[s->q_item] & 0xFFFFu);
            s->q_item++;
        }
    }
    st = es_stream_step(&s->engine, s->step_idx, n_idx, values, samples, s->scores, &d, &decided);
    if (st != ES_OK) {
        /* checked on arrival: cannot happen; end the stream rather than run on */
        es_link_send_error(l, s->req_seq, st, "stream step refused its input", step);
        l->stats.streams_aborted++;
        es_link_stream_close(l);
        return;
    }
    l->stats.stream_steps++;
    if (s->record_spikes) {
        const es_engine_t *e = s->engine.engine;
        for (k = 0; k < e->n_spk[last]; k++) {
            if (s->out.output_spikes_count < ES_LINK_MAX_OUTPUTS) {
                s->out.output_spikes[s->out.output_spikes_count++] =
                    ((step - s->out.spikes_first_step) << 16) | e->spk[last][k];
            } else {
                s->out.spikes_truncated = true;
            }
        }
    }
    if (decided) {
        edgespike_Decision *o;
        if (s->out.decisions_count >= ES_LINK_STREAM_DECISIONS) {
            stream_send(l, s->req_seq, false);
        }
        o = &s->out.decisions[s->out.decisions_count++];
        o->index = d.index;
        o->end_step = d.end_step;
        o->prediction = d.prediction;
        o->scores_count = d.n_scores;
        for (k = 0; k < d.n_scores; k++) {
            o->scores[k] = s->scores[k];
        }
        o->device_time = es_link_now(l);
        o->input_time = b->arrival;
        o->host_time_us = b->host_time_us;
        l->stats.stream_decisions++;
        s->flush = true;
    }
    if (++s->q_step >= b->n_steps) {
        s->acked_seq = b->batch_seq;
        s->q_head = (uint8_t)((s->q_head + 1u) % ES_STREAM_SLOTS);
        s->q_count--;
        s->q_step = 0;
        s->q_item = 0;
        s->flush = true;
    }
}

/* ceil(cycles / cycles_per_us), at least 1 and below ES_LINK_IDLE. In 32-bit divisions
 * (the M4 has a divide instruction; a 64-bit one would pull 700 bytes of libgcc): the divisor
 * is a clock in MHz, below 2^16, so the quotient is taken 16 bits at a time. */
static uint32_t cycles_to_us(const es_link_t *l, uint64_t cycles)
{
    const uint32_t d = l->port.cycles_per_us;
    const uint32_t hi = (uint32_t)(cycles >> 32), lo = (uint32_t)cycles;
    if (d >= 0x10000u || hi >= d) {
        return ES_LINK_IDLE - 1u; /* 2^32 us or more, or a clock this code does not expect */
    }
    const uint32_t a = (hi << 16) | (lo >> 16);
    const uint32_t b = ((a % d) << 16) | (lo & 0xFFFFu);
    const uint32_t q = ((a / d) << 16) | (b / d);
    if (q >= ES_LINK_IDLE - 1u) {
        return ES_LINK_IDLE - 1u;
    }
    const uint32_t us = q + (b % d != 0u ? 1u : 0u);
    return us == 0u ? 1u : us;
}

uint32_t es_link_poll(es_link_t *l)
{
    es_link_stream_t *s = &l->stream;
    uint64_t now;
    if (!s->open) {
        return ES_LINK_IDLE;
    }
    now = es_link_now(l);
    if (!s->free_run && s->q_count > 0u) {
        uint64_t due;
        if (!s->clock_started) {
            /* the schedule starts with the first input: step k is due k periods later */
            s->clock_started = true;
            s->t0 = s->q[s->q_head].arrival;
        }
        due = s->t0 + (uint64_t)s->engine.steps * s->period;
        if (now < due) {
            return cycles_to_us(l, due - now);
        }
        if (now - due > s->period) {
            s->stalls++; /* this step runs more than a period after it was due */
        }
    }
    if (s->q_count == 0u) {
        if (l->port.cycles == NULL || l->port.cycles_per_us == 0u) {
            return ES_LINK_IDLE;
        }
        if (now - s->last_rx >= s->idle_timeout) {
            es_link_stream_abort(l); /* the host went quiet: back to idle */
            return ES_LINK_IDLE;
        }
        return cycles_to_us(l, s->idle_timeout - (now - s->last_rx));
    }
    stream_step(l);
    if (s->open && s->flush) {
        stream_send(l, s->req_seq, false);
    }
    return 0;
}
