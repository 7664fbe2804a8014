/* The link: framing, dispatch, and the small requests (Hello, Stats, Reset). Uploads, runs
 * and streams are in es_link_upload.c, es_link_run.c and es_link_stream.c. See es_link.h
 * and protocol/FRAMING.md. */
#include "es_link_internal.h"

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
/* Every answer fits the frame at its worst-case encoding (es_link.h): room for at least one
 * output spike event beside a full RunResult, and one full Decision per OutputBatch. */
ES_CHECK(frame_fits_run_result, ES_MAX_FRAME_BYTES >= ES_WC_FRAME + ES_WC_RUN_RESULT + 5u);
ES_CHECK(frame_fits_decision, ES_MAX_FRAME_BYTES >= ES_WC_FRAME + ES_WC_OUTPUT_BATCH +
                                                        5u * ES_LINK_MAX_OUTPUTS + ES_WC_DECISION);
ES_CHECK(frame_len_prefix, ES_MAX_FRAME_BYTES < (1u << 21));

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

/* Encode l->resp and send it as one frame, in the current session (a stream's OutputBatch
 * carries its own). Every Error frame sent is counted in Stats.errors_sent. */
void es_link_send_resp(es_link_t *l)
{
    pb_ostream_t os;
    if (l->resp.which_body != edgespike_Frame_output_batch_tag) {
        l->resp.session = l->session;
    }
    os = pb_ostream_from_buffer(l->tx_buf, ES_MAX_FRAME_BYTES);
    if (!pb_encode(&os, edgespike_Frame_fields, &l->resp)) {
        /* Cannot happen: every answer fits at its worst-case encoding (es_link.h). Should it
         * all the same, answer something small instead. */
        uint32_t seq = l->resp.seq;
        uint32_t session = l->resp.session;
        memset(&l->resp, 0, sizeof(l->resp));
        l->resp.seq = seq;
        l->resp.session = session;
        l->resp.which_body = edgespike_Frame_error_tag;
        l->resp.body.error.code = edgespike_ErrorCode_ERR_INTERNAL;
        copy_text(l->resp.body.error.message, sizeof(l->resp.body.error.message),
                  "response does not fit the frame buffer");
        os = pb_ostream_from_buffer(l->tx_buf, ES_MAX_FRAME_BYTES);
        if (!pb_encode(&os, edgespike_Frame_fields, &l->resp)) {
            return;
        }
    }
    if (l->resp.which_body == edgespike_Frame_error_tag) {
        l->stats.errors_sent++;
    }
    es_frame_send(l->tx_buf, os.bytes_written, l->port.write, l->port.ctx);
}

void es_link_send_error(es_link_t *l, uint32_t seq, es_status_t code, const char *text,
                               uint32_t detail)
{
    memset(&l->resp, 0, sizeof(l->resp));
    l->resp.seq = seq;
    l->resp.which_body = edgespike_Frame_error_tag;
    l->resp.body.error.code = (edgespike_ErrorCode)code;
    l->resp.body.error.detail = detail;
    copy_text(l->resp.body.error.message, sizeof(l->resp.body.error.message), text);
    es_link_send_resp(l);
}

void es_link_send_engine_error(es_link_t *l, uint32_t seq, es_status_t st)
{
    const char *text = l->err.text[0] != '\0' ? l->err.text : "rejected by the engine";
    es_link_send_error(l, seq, l->err.code != ES_OK ? l->err.code : st, text, l->err.detail);
}

void es_link_send_ack(es_link_t *l, uint32_t seq, uint32_t value)
{
    memset(&l->resp, 0, sizeof(l->resp));
    l->resp.seq = seq;
    l->resp.which_body = edgespike_Frame_ack_tag;
    l->resp.body.ack.value = value;
    es_link_send_resp(l);
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
    d->max_outputs = ES_LINK_MAX_OUTPUTS;
    d->model_loaded = l->loaded;
    if (l->loaded) {
        d->model_crc32 = a->model.crc32;
        d->model_bytes = a->blob_len;
        d->state_bytes_used = a->arena_used;
    }
    d->flash_bytes = l->port.flash_bytes;
    d->ram_bytes = l->port.ram_bytes;
    if (l->port.build_id != NULL) {
        d->build_id.size = (pb_size_t)(l->port.build_id_len < sizeof(d->build_id.bytes)
                                           ? l->port.build_id_len
                                           : sizeof(d->build_id.bytes));
        memcpy(d->build_id.bytes, l->port.build_id, d->build_id.size);
    }
    es_link_send_resp(l);
}

static void on_stats(es_link_t *l, uint32_t seq)
{
    memset(&l->resp, 0, sizeof(l->resp));
    l->resp.seq = seq;
    l->resp.which_body = edgespike_Frame_stats_tag;
    l->resp.body.stats = l->stats;
    es_link_send_resp(l);
}

static void on_reset(es_link_t *l, uint32_t seq)
{
    /* Abandon any upload, zero the neuron state and the statistics; keep the model. */
    l->uploading = false;
    if (l->loaded) {
        es_engine_reset(&l->slots[l->active].engine);
    }
    memset(&l->stats, 0, sizeof(l->stats));
    es_link_send_ack(l, seq, 0);
}

static void dispatch(es_link_t *l, const uint8_t *payload, size_t len)
{
    pb_istream_t is = pb_istream_from_buffer(payload, len);
    const edgespike_Frame *q = &l->req;
    if (!pb_decode(&is, edgespike_Frame_fields, &l->req)) {
        es_link_send_error(l, 0, ES_ERR_DECODE, PB_GET_ERROR(&is), 0);
        return;
    }
    l->stats.frames_ok++;
    if (q->session != l->session) {
        /* A new session: the host before it is gone (one host per link). What it left open
         * ends: its stream (a final OutputBatch in its own session) and its upload. */
        es_link_stream_abort(l);
        l->uploading = false;
        l->session = q->session;
    } else if (q->session != 0u) {
        /* Within a session the host numbers its requests upwards: one that is not newer
         * than the last is a duplicated or late copy, already answered. Dropped. */
        uint32_t d = q->seq - l->last_seq;
        if (d == 0u || d >= 0x80000000u) {
            l->stats.frames_stale++;
            return;
        }
    }
    l->last_seq = q->seq;
    /* Any request but the stream's own (and Stats) ends an open stream first. */
    if (l->stream.open && q->which_body != edgespike_Frame_event_batch_tag &&
        q->which_body != edgespike_Frame_stream_stop_tag &&
        q->which_body != edgespike_Frame_stats_request_tag &&
        q->which_body != edgespike_Frame_stream_start_tag) {
        es_link_stream_abort(l);
    }
    switch (q->which_body) {
    case edgespike_Frame_hello_tag:
        on_hello(l, q->seq);
        break;
    case edgespike_Frame_model_begin_tag:
        es_link_on_model_begin(l, q->seq, &q->body.model_begin);
        break;
    case edgespike_Frame_model_chunk_tag:
        es_link_on_model_chunk(l, q->seq, &q->body.model_chunk);
        break;
    case edgespike_Frame_model_commit_tag:
        es_link_on_model_commit(l, q->seq);
        break;
    case edgespike_Frame_run_tag:
        es_link_on_run(l, q->seq, &q->body.run);
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
            es_link_stream_close(l);
        }
        es_link_on_stream_start(l, q->seq, &q->body.stream_start);
        break;
    case edgespike_Frame_event_batch_tag:
        es_link_on_event_batch(l, q->seq, &q->body.event_batch);
        break;
    case edgespike_Frame_stream_stop_tag:
        es_link_on_stream_stop(l, q->seq);
        break;
    default:
        es_link_send_error(l, q->seq, ES_ERR_UNKNOWN_MESSAGE, "no handler for this message body",
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
            es_link_send_error(l, 0, ES_ERR_BAD_CRC, "frame CRC-32 mismatch", 0);
            break;
        case ES_RX_BAD_FRAME:
            l->stats.frames_bad_cobs++;
            es_link_send_error(l, 0, ES_ERR_BAD_FRAME,
                               "malformed COBS or frame shorter than its CRC", 0);
            break;
        case ES_RX_TOO_LONG:
            l->stats.frames_too_long++;
            es_link_send_error(l, 0, ES_ERR_FRAME_TOO_LONG, "frame longer than the device's buffer",
                               ES_MAX_FRAME_BYTES);
            break;
        }
    }
}

void es_link_disconnected(es_link_t *l)
{
    l->uploading = false;
    if (l->stream.open) {
        l->stats.streams_aborted++;
        es_link_stream_close(l);
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
