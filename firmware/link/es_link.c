/* The protocol dispatcher. See es_link.h and protocol/FRAMING.md. */
#include "es_link.h"

#include <string.h>

#include "pb_decode.h"
#include "pb_encode.h"

/* The C limits must agree with the nanopb arrays sized by protocol/edgespike.options. */
#define ES_CHECK(name, cond) typedef char es_check_##name[(cond) ? 1 : -1]
#define ES_FIELD_SIZE(type, member) sizeof(((type *)0)->member)
ES_CHECK(chunk, ES_FIELD_SIZE(edgespike_ModelChunk, data.bytes) == ES_MAX_CHUNK_BYTES);
ES_CHECK(events, ES_FIELD_SIZE(edgespike_Run, events) == ES_MAX_INPUT_ITEMS * 4u);
ES_CHECK(values, ES_FIELD_SIZE(edgespike_Run, values) == ES_MAX_INPUT_ITEMS * 4u);
ES_CHECK(scores, ES_FIELD_SIZE(edgespike_RunResult, scores) == ES_MAX_SCORES * 8u);
ES_CHECK(spikes, ES_FIELD_SIZE(edgespike_RunResult, output_spikes) == ES_MAX_OUTPUT_EVENTS * 4u);
ES_CHECK(layers, ES_FIELD_SIZE(edgespike_RunResult, layers) ==
                     ES_MAX_LAYERS * sizeof(edgespike_LayerStats));
ES_CHECK(status_codes, (int)ES_ERR_INTERNAL == (int)edgespike_ErrorCode_ERR_INTERNAL);
ES_CHECK(frame_fits_u32, ES_MAX_FRAME_BYTES < 0x7FFFFFFFu);
ES_CHECK(batch_events, ES_FIELD_SIZE(edgespike_EventBatch, events) == ES_STREAM_BATCH_ITEMS * 4u);
ES_CHECK(batch_values, ES_FIELD_SIZE(edgespike_EventBatch, values) == ES_STREAM_BATCH_ITEMS * 4u);
ES_CHECK(batch_samples, ES_FIELD_SIZE(edgespike_EventBatch, samples) == ES_STREAM_BATCH_ITEMS * 4u);
ES_CHECK(thresholds, ES_FIELD_SIZE(edgespike_StreamStart, delta_thresholds) ==
                         ES_STREAM_MAX_CHANNELS * 4u);
ES_CHECK(decisions, ES_FIELD_SIZE(edgespike_OutputBatch, decisions) ==
                        ES_STREAM_MAX_DECISIONS * sizeof(edgespike_Decision));
ES_CHECK(decision_scores, ES_FIELD_SIZE(edgespike_Decision, scores) == ES_MAX_SCORES * 8u);
ES_CHECK(stream_spikes, ES_FIELD_SIZE(edgespike_OutputBatch, output_spikes) ==
                            ES_MAX_OUTPUT_EVENTS * 4u);
ES_CHECK(stream_status, (int)edgespike_ErrorCode_ERR_NOT_STREAMING == 18);

static void copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    if (src != NULL) {
        while (n + 1u < cap && src[n] != '\0') {
            dst[n] = src[n];
            n++;
        }
    }
    dst[n] = '\0';
}

/* Encode l->resp and send it as one frame. */
static void send_resp(es_link_t *l)
{
    pb_ostream_t os = pb_ostream_from_buffer(l->tx_buf, ES_MAX_FRAME_BYTES);
    if (!pb_encode(&os, edgespike_Frame_fields, &l->resp)) {
        /* Cannot happen within the limits above; answer something small instead. */
        uint32_t seq = l->resp.seq;
        memset(&l->resp, 0, sizeof(l->resp));
        l->resp.seq = seq;
        l->resp.which_body = edgespike_Frame_error_tag;
        l->resp.body.error.code = edgespike_ErrorCode_ERR_INTERNAL;
        copy_text(l->resp.body.error.message, sizeof(l->resp.body.error.message),
                  "response does not fit the frame buffer");
        os = pb_ostream_from_buffer(l->tx_buf, ES_MAX_FRAME_BYTES);
        if (!pb_encode(&os, edgespike_Frame_fields, &l->resp)) {
            return;
        }
    }
    es_frame_send(l->tx_buf, os.bytes_written, l->port.write, l->port.ctx);
}

static void send_error(es_link_t *l, uint32_t seq, es_status_t code, const char *text,
                       uint32_t detail)
{
    memset(&l->resp, 0, sizeof(l->resp));
    l->resp.seq = seq;
    l->resp.which_body = edgespike_Frame_error_tag;
    l->resp.body.error.code = (edgespike_ErrorCode)code;
    l->resp.body.error.detail = detail;
    copy_text(l->resp.body.error.message, sizeof(l->resp.body.error.message), text);
    l->stats.errors_sent++;
    send_resp(l);
}

static void send_engine_error(es_link_t *l, uint32_t seq, es_status_t st)
{
    const char *text = l->err.text[0] != '\0' ? l->err.text : "rejected by the engine";
    send_error(l, seq, l->err.code != ES_OK ? l->err.code : st, text, l->err.detail);
}

static void send_ack(es_link_t *l, uint32_t seq, uint32_t value)
{
    memset(&l->resp, 0, sizeof(l->resp));
    l->resp.seq = seq;
    l->resp.which_body = edgespike_Frame_ack_tag;
    l->resp.body.ack.value = value;
    send_resp(l);
}

static void clear_err(es_link_t *l)
{
    memset(&l->err, 0, sizeof(l->err));
}

static void on_hello(es_link_t *l, uint32_t seq)
{
    edgespike_DeviceInfo *d;
    const es_slot_t *a = &l->slots[l->active];
    memset(&l->resp, 0, sizeof(l->resp));
    l->resp.seq = seq;
    l->resp.which_body = edgespike_Frame_device_info_tag;
    d = &l->resp.body.device_info;
    d->protocol_version = ES_PROTOCOL_VERSION;
    copy_text(d->firmware_version, sizeof(d->firmware_version), ES_FIRMWARE_VERSION);
    copy_text(d->board, sizeof(d->board), l->port.board);
    copy_text(d->core, sizeof(d->core), l->port.core);
    d->clock_hz = l->port.clock_hz;
    d->cycle_source = (edgespike_CycleSource)l->port.cycle_source;
    d->model_capacity_bytes = ES_MODEL_CAPACITY;
    d->state_capacity_bytes = ES_STATE_CAPACITY;
    d->max_layers = ES_MAX_LAYERS;
    d->max_frame_bytes = ES_MAX_FRAME_BYTES;
    d->max_chunk_bytes = ES_MAX_CHUNK_BYTES;
    d->max_input_items = ES_MAX_INPUT_ITEMS;
    d->max_outputs = ES_MAX_OUTPUT_EVENTS;
    d->model_loaded = l->loaded;
    if (l->loaded) {
        d->model_crc32 = a->model.crc32;
        d->model_bytes = a->blob_len;
        d->state_bytes_used = a->arena_used;
    }
    d->flash_bytes = l->port.flash_bytes;
    d->ram_bytes = l->port.ram_bytes;
    send_resp(l);
}

static void on_model_begin(es_link_t *l, uint32_t seq, const edgespike_ModelBegin *b)
{
    /* A new begin abandons any upload in progress; the active model is untouched. */
    l->uploading = false;
    if (b->total_bytes == 0u) {
        l->stats.uploads_rejected++;
        send_error(l, seq, ES_ERR_MODEL_INVALID, "ModelBegin announces a model of 0 bytes", 0);
        return;
    }
    if (b->total_bytes > ES_MODEL_CAPACITY) {
        l->stats.uploads_rejected++;
        send_error(l, seq, ES_ERR_MODEL_TOO_LARGE, "model larger than the device's model capacity",
                   ES_MODEL_CAPACITY);
        return;
    }
    l->uploading = true;
    l->up_total = b->total_bytes;
    l->up_crc = b->crc32;
    l->up_received = 0;
    send_ack(l, seq, 0);
}

static void on_model_chunk(es_link_t *l, uint32_t seq, const edgespike_ModelChunk *c)
{
    es_slot_t *s = &l->slots[l->active ^ 1u];
    uint32_t n = c->data.size;
    if (!l->uploading) {
        send_error(l, seq, ES_ERR_UPLOAD_NOT_STARTED, "ModelChunk without ModelBegin", 0);
        return;
    }
    if (c->offset != l->up_received) {
        send_error(l, seq, ES_ERR_UPLOAD_OFFSET, "chunk not at the next expected offset",
                   l->up_received);
        return;
    }
    if (n > l->up_total - l->up_received) {
        send_error(l, seq, ES_ERR_UPLOAD_OFFSET, "chunk runs past the announced total_bytes",
                   l->up_received);
        return;
    }
    memcpy((uint8_t *)s->blob_words + l->up_received, c->data.bytes, n);
    l->up_received += n;
    send_ack(l, seq, l->up_received);
}

static void on_model_commit(es_link_t *l, uint32_t seq)
{
    uint8_t staging = (uint8_t)(l->active ^ 1u);
    es_slot_t *s = &l->slots[staging];
    const uint8_t *blob = (const uint8_t *)s->blob_words;
    uint32_t need;
    es_status_t st;
    if (!l->uploading) {
        send_error(l, seq, ES_ERR_UPLOAD_NOT_STARTED, "ModelCommit without ModelBegin", 0);
        return;
    }
    if (l->up_received != l->up_total) {
        send_error(l, seq, ES_ERR_UPLOAD_INCOMPLETE, "commit before all bytes arrived",
                   l->up_received);
        return;
    }
    /* From here the upload is consumed whatever the outcome. */
    l->uploading = false;
    if (es_crc32(0, blob, l->up_total) != l->up_crc) {
        l->stats.uploads_rejected++;
        send_error(l, seq, ES_ERR_MODEL_CRC, "blob CRC-32 differs from ModelBegin.crc32", 0);
        return;
    }
    clear_err(l);
    st = es_model_parse(&s->model, blob, l->up_total, &l->err);
    if (st != ES_OK) {
        l->stats.uploads_rejected++;
        send_engine_error(l, seq, st);
        return;
    }
    if (s->model.n_layers == 0u ||
        s->model.layers[s->model.n_layers - 1u].size > ES_MAX_SCORES) {
        l->stats.uploads_rejected++;
        send_error(l, seq, ES_ERR_MODEL_TOO_LARGE, "output layer larger than ES_MAX_SCORES",
                   ES_MAX_SCORES);
        return;
    }
    need = es_engine_arena_bytes(&s->model);
    if (need > ES_STATE_CAPACITY) {
        l->stats.uploads_rejected++;
        send_error(l, seq, ES_ERR_MODEL_TOO_LARGE, "model state exceeds the state arena",
                   need);
        return;
    }
    clear_err(l);
    st = es_engine_init(&s->engine, &s->model, s->arena_words, ES_STATE_CAPACITY, &l->err);
    if (st != ES_OK) {
        l->stats.uploads_rejected++;
        send_engine_error(l, seq, st);
        return;
    }
    if (l->port.cycles != NULL) {
        es_engine_set_cycle_counter(&s->engine, l->port.cycles, l->port.ctx,
                                    l->port.cycle_source);
    }
    s->blob_len = l->up_total;
    s->arena_used = need;
    /* Only now, with everything valid, does the new model replace the old one. */
    l->active = staging;
    l->loaded = true;
    l->stats.uploads_committed++;
    send_ack(l, seq, l->up_total);
}

static void on_run(es_link_t *l, uint32_t seq, const edgespike_Run *r)
{
    es_slot_t *a = &l->slots[l->active];
    edgespike_RunResult *rr;
    es_input_t in;
    es_result_t out;
    es_status_t st;
    uint8_t i;
    if (!l->loaded) {
        send_error(l, seq, ES_ERR_NO_MODEL, "no model committed; upload one first", 0);
        return;
    }
    memset(&in, 0, sizeof(in));
    if (a->model.input_kind == ES_INPUT_VALUES) {
        if (r->events_count != 0u) {
            send_error(l, seq, ES_ERR_BAD_INPUT, "model takes values, Run carries events", 0);
            return;
        }
        in.values = r->values;
        in.n_values = r->values_count;
    } else {
        if (r->values_count != 0u) {
            send_error(l, seq, ES_ERR_BAD_INPUT, "model takes events, Run carries values", 0);
            return;
        }
        in.events = r->events;
        in.n_events = r->events_count;
    }
    clear_err(l);
    st = es_input_check(&a->model, &in, &l->err);
    if (st != ES_OK) {
        send_engine_error(l, seq, st);
        return;
    }
    /* The engine writes scores and spikes straight into the response message. */
    memset(&l->resp, 0, sizeof(l->resp));
    rr = &l->resp.body.run_result;
    memset(&out, 0, sizeof(out));
    out.scores = rr->scores;
    out.spike_events = r->record_spikes ? rr->output_spikes : NULL;
    out.spike_capacity = r->record_spikes ? ES_MAX_OUTPUT_EVENTS : 0u;
    clear_err(l);
    st = es_engine_run(&a->engine, &in, &out, &l->err);
    if (st != ES_OK) {
        send_engine_error(l, seq, st);
        return;
    }
    l->stats.runs++;
    l->resp.seq = seq;
    l->resp.which_body = edgespike_Frame_run_result_tag;
    rr->prediction = out.prediction;
    rr->scores_count = out.n_scores <= ES_MAX_SCORES ? out.n_scores : ES_MAX_SCORES;
    rr->layers_count = out.n_layers <= ES_MAX_LAYERS ? out.n_layers : ES_MAX_LAYERS;
    for (i = 0; i < rr->layers_count; i++) {
        rr->layers[i].input_events = out.layers[i].input_events;
        rr->layers[i].synops = out.layers[i].synops;
        rr->layers[i].neuron_updates = out.layers[i].neuron_updates;
        rr->layers[i].spikes = out.layers[i].spikes;
        rr->layers[i].cycles = out.layers[i].cycles;
    }
    rr->cycles = out.cycles;
    rr->cycle_source = (edgespike_CycleSource)(l->port.cycles != NULL ? l->port.cycle_source
                                                                      : ES_CYCLES_NONE);
    if (r->record_spikes) {
        rr->output_spikes_count = out.n_spike_events <= ES_MAX_OUTPUT_EVENTS
                                      ? out.n_spike_events
                                      : ES_MAX_OUTPUT_EVENTS;
        rr->spikes_truncated = out.spikes_truncated;
    }
    send_resp(l);
}

static void on_stats(es_link_t *l, uint32_t seq)
{
    memset(&l->resp, 0, sizeof(l->resp));
    l->resp.seq = seq;
    l->resp.which_body = edgespike_Frame_stats_tag;
    l->resp.body.stats = l->stats;
    send_resp(l);
}

static void on_reset(es_link_t *l, uint32_t seq)
{
    /* Abandon any upload, zero the neuron state and the statistics; keep the model. */
    l->uploading = false;
    if (l->loaded) {
        es_engine_reset(&l->slots[l->active].engine);
    }
    memset(&l->stats, 0, sizeof(l->stats));
    send_ack(l, seq, 0);
}

/* ---- Streaming (FRAMING.md "Streaming") ------------------------------------------------- */
#define ES_ERR_STREAM_GAP ((es_status_t)edgespike_ErrorCode_ERR_STREAM_GAP)
#define ES_ERR_NO_CREDIT ((es_status_t)edgespike_ErrorCode_ERR_NO_CREDIT)
#define ES_ERR_NOT_STREAMING ((es_status_t)edgespike_ErrorCode_ERR_NOT_STREAMING)

static uint64_t link_now(const es_link_t *l)
{
    return l->port.cycles != NULL ? l->port.cycles(l->port.ctx) : 0u;
}

/* Send the OutputBatch being filled (seq given), then start a fresh one. */
static void stream_send(es_link_t *l, uint32_t seq, bool final)
{
    es_link_stream_t *s = &l->stream;
    edgespike_OutputBatch *o = &s->out;
    o->out_seq = ++s->out_seq;
    o->acked_seq = s->acked_seq;
    o->credit_limit = s->acked_seq + ES_STREAM_SLOTS;
    o->device_time = link_now(l);
    o->steps_run = s->engine.steps;
    o->items_received = s->items_received;
    o->batches_received = s->batches_received;
    o->stalls = s->stalls;
    o->final = final;
    memset(&l->resp, 0, sizeof(l->resp));
    l->resp.seq = seq;
    l->resp.which_body = edgespike_Frame_output_batch_tag;
    l->resp.body.output_batch = *o;
    send_resp(l);
    memset(o, 0, sizeof(*o));
    o->spikes_first_step = s->engine.steps;
    s->flush = false;
}

/* End the stream (queued input is dropped). */
static void stream_close(es_link_t *l)
{
    l->stream.open = false;
    l->stream.q_count = 0;
}

/* End an open stream for another reason than StreamStop: tell the host (a final
 * OutputBatch, if anyone listens) and count it. */
static void stream_abort(es_link_t *l)
{
    if (l->stream.open) {
        l->stats.streams_aborted++;
        stream_send(l, l->stream.req_seq, true);
        stream_close(l);
    }
}

static void on_stream_start(es_link_t *l, uint32_t seq, const edgespike_StreamStart *q)
{
    es_link_stream_t *s = &l->stream;
    es_slot_t *a = &l->slots[l->active];
    es_stream_cfg_t cfg;
    es_status_t st;
    uint32_t i;
    if (!l->loaded) {
        send_error(l, seq, ES_ERR_NO_MODEL, "no model committed; upload one first", 0);
        return;
    }
    if (q->window > 65535u || q->hop > 65535u) {
        send_error(l, seq, ES_ERR_BAD_INPUT, "window and hop take at most 65535 steps", 0);
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
    clear_err(l);
    st = es_stream_start(&s->engine, &a->engine, &cfg, &l->err);
    if (st != ES_OK) {
        s->open = false;
        send_engine_error(l, seq, st);
        return;
    }
    s->open = true;
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
    s->t0 = link_now(l);
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
    send_error(l, seq, code, text, detail);
    l->stats.streams_aborted++;
    stream_close(l);
}

static void on_event_batch(es_link_t *l, uint32_t seq, const edgespike_EventBatch *b)
{
    es_link_stream_t *s = &l->stream;
    const es_model_t *m = &l->slots[l->active].model;
    es_batch_t *slot;
    uint32_t n_items, i, want;
    if (!s->open) {
        send_error(l, seq, ES_ERR_NOT_STREAMING, "EventBatch without an open stream", 0);
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
    slot->arrival = link_now(l);
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

static void on_stream_stop(es_link_t *l, uint32_t seq)
{
    if (!l->stream.open) {
        send_error(l, seq, ES_ERR_NOT_STREAMING, "StreamStop without an open stream", 0);
        return;
    }
    stream_send(l, seq, true);
    stream_close(l);
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
        send_error(l, s->req_seq, st, "stream step refused its input", step);
        l->stats.streams_aborted++;
        stream_close(l);
        return;
    }
    l->stats.stream_steps++;
    if (s->record_spikes) {
        const es_engine_t *e = s->engine.engine;
        for (k = 0; k < e->n_spk[last]; k++) {
            if (s->out.output_spikes_count < ES_MAX_OUTPUT_EVENTS) {
                s->out.output_spikes[s->out.output_spikes_count++] =
                    ((step - s->out.spikes_first_step) << 16) | e->spk[last][k];
            } else {
                s->out.spikes_truncated = true;
            }
        }
    }
    if (decided) {
        edgespike_Decision *o;
        if (s->out.decisions_count >= ES_STREAM_MAX_DECISIONS) {
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
        o->device_time = link_now(l);
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

static uint32_t cycles_to_us(const es_link_t *l, uint64_t cycles)
{
    uint64_t us = (cycles + l->port.cycles_per_us - 1u) / l->port.cycles_per_us;
    if (us == 0u) {
        us = 1u;
    }
    return us >= ES_LINK_IDLE ? ES_LINK_IDLE - 1u : (uint32_t)us;
}

uint32_t es_link_poll(es_link_t *l)
{
    es_link_stream_t *s = &l->stream;
    uint64_t now;
    if (!s->open) {
        return ES_LINK_IDLE;
    }
    now = link_now(l);
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
            stream_abort(l); /* the host went quiet: back to idle */
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

void es_link_disconnected(es_link_t *l)
{
    if (l->stream.open) {
        l->stats.streams_aborted++;
        stream_close(l);
    }
}

static void dispatch(es_link_t *l, const uint8_t *payload, size_t len)
{
    pb_istream_t is = pb_istream_from_buffer(payload, len);
    const edgespike_Frame *q = &l->req;
    if (!pb_decode(&is, edgespike_Frame_fields, &l->req)) {
        send_error(l, 0, ES_ERR_DECODE, PB_GET_ERROR(&is), 0);
        return;
    }
    l->stats.frames_ok++;
    /* Any request but the stream's own (and Stats) ends an open stream first. */
    if (l->stream.open && q->which_body != edgespike_Frame_event_batch_tag &&
        q->which_body != edgespike_Frame_stream_stop_tag &&
        q->which_body != edgespike_Frame_stats_request_tag &&
        q->which_body != edgespike_Frame_stream_start_tag) {
        stream_abort(l);
    }
    switch (q->which_body) {
    case edgespike_Frame_hello_tag:
        on_hello(l, q->seq);
        break;
    case edgespike_Frame_model_begin_tag:
        on_model_begin(l, q->seq, &q->body.model_begin);
        break;
    case edgespike_Frame_model_chunk_tag:
        on_model_chunk(l, q->seq, &q->body.model_chunk);
        break;
    case edgespike_Frame_model_commit_tag:
        on_model_commit(l, q->seq);
        break;
    case edgespike_Frame_run_tag:
        on_run(l, q->seq, &q->body.run);
        break;
    case edgespike_Frame_stats_request_tag:
        on_stats(l, q->seq);
        break;
    case edgespike_Frame_reset_tag:
        on_reset(l, q->seq);
        break;
    case edgespike_Frame_stream_start_tag:
        if (l->stream.open) {
            l->stats.streams_aborted++; /* a new stream replaces the open one */
            stream_close(l);
        }
        on_stream_start(l, q->seq, &q->body.stream_start);
        break;
    case edgespike_Frame_event_batch_tag:
        on_event_batch(l, q->seq, &q->body.event_batch);
        break;
    case edgespike_Frame_stream_stop_tag:
        on_stream_stop(l, q->seq);
        break;
    default:
        send_error(l, q->seq, ES_ERR_UNKNOWN_MESSAGE, "no handler for this message body",
                   q->which_body);
        break;
    }
}

void es_link_init(es_link_t *l, const es_port_t *port)
{
    memset(l, 0, sizeof(*l));
    l->port = *port;
    es_frame_rx_init(&l->rx, l->rx_buf, sizeof(l->rx_buf));
}

void es_link_rx(es_link_t *l, const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        const uint8_t *payload = NULL;
        size_t len = 0;
        switch (es_frame_rx_byte(&l->rx, data[i], &payload, &len)) {
        case ES_RX_NONE:
            break;
        case ES_RX_FRAME:
            dispatch(l, payload, len);
            break;
        case ES_RX_BAD_CRC:
            l->stats.frames_bad_crc++;
            send_error(l, 0, ES_ERR_BAD_CRC, "frame CRC-32 mismatch", 0);
            break;
        case ES_RX_BAD_FRAME:
            l->stats.frames_bad_cobs++;
            send_error(l, 0, ES_ERR_BAD_FRAME, "malformed COBS or frame shorter than its CRC", 0);
            break;
        case ES_RX_TOO_LONG:
            l->stats.frames_too_long++;
            send_error(l, 0, ES_ERR_FRAME_TOO_LONG, "frame longer than the device's buffer",
                       ES_MAX_FRAME_BYTES);
            break;
        }
    }
}

void es_link_resync(es_link_t *l)
{
    es_frame_rx_init(&l->rx, l->rx_buf, sizeof(l->rx_buf));
}

void es_link_note_rx_overrun(es_link_t *l, uint32_t lost)
{
    l->stats.rx_overruns += lost;
}
