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

static void dispatch(es_link_t *l, const uint8_t *payload, size_t len)
{
    pb_istream_t is = pb_istream_from_buffer(payload, len);
    const edgespike_Frame *q = &l->req;
    if (!pb_decode(&is, edgespike_Frame_fields, &l->req)) {
        send_error(l, 0, ES_ERR_DECODE, PB_GET_ERROR(&is), 0);
        return;
    }
    l->stats.frames_ok++;
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
