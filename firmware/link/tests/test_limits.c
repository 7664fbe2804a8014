/*
 * The link's advertised limits hold (issue 12, case 6): every answer fits ES_MAX_FRAME_BYTES
 * at the worst-case encoding of every field, with DeviceInfo.max_outputs output spike events;
 * a Run whose recorded spikes come late (step >= 4096: 5 bytes each) and many gets its
 * RunResult, cut at max_outputs with spikes_truncated set, never ERR_INTERNAL; and every
 * Error frame sent is counted in Stats.errors_sent.
 * Built with each board's limits: the host's, the stm32f4's (4224-byte frames) on the host,
 * and the mps2-an386's under QEMU. Exit code = failures.
 */
#include <stdio.h>
#include <string.h>

#include "es_cobs.h"
#include "es_frame.h"
#include "es_test_capture.h"
#include "es_link.h"
#include "pb_decode.h"
#include "pb_encode.h"

static int g_fail = 0;
#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                   \
            g_fail++;                                                                \
        }                                                                            \
    } while (0)

/* protocol/vectors/generate.py late_spikes_model(): 1 input -> 64 outputs, 4400 steps,
 * membrane-sum scores; tests/test_vectors.py checks this copy and the figures below. */
static const char *const k_late_model[][2] = {
    {"late_spikes_model",
     "080112046c6174651801280130b0223802426010401a480801104022407f7f7f"
     "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f"
     "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f280e2a"
     "0d088020108020180128ff3f380732036f757448e8075200c53e931e394d"},
};
/* Its run on late_spikes_events(40): one input spike a step from step 4096 on makes every
 * output spike that step; each score is this membrane sum. */
#define ES_LATE_EVENTS 40u
#define ES_LATE_OUTPUTS 64u
#define ES_LATE_SCORE (-2285895680LL)

static capture_t g_cap;
static es_link_t g_link;
static edgespike_Frame g_req, g_resp;
static uint8_t g_blob[256];
static uint8_t g_payload[ES_MAX_FRAME_BYTES + 8u];
static uint8_t g_wire[ES_COBS_MAX_ENCODED(ES_MAX_FRAME_BYTES + 8u) + 1u];
static uint8_t g_rxbuf[ES_MAX_FRAME_BYTES + 8u];
static size_t g_resp_len; /* payload bytes of the last answer */

static size_t hex_decode(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (hex[0] != '\0' && hex[1] != '\0' && n < cap) {
        unsigned v = 0;
        int k;
        for (k = 0; k < 2; k++) {
            char c = hex[k];
            v = v * 16u + (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

/* Decode every frame the link sent since the last call; the last lands in g_resp. */
static int take_responses(void)
{
    es_frame_rx_t rx;
    size_t i;
    int count = 0;
    es_frame_rx_init(&rx, g_rxbuf, sizeof(g_rxbuf));
    CHECK(!g_cap.overflow);
    for (i = 0; i < g_cap.n; i++) {
        const uint8_t *p = NULL;
        size_t len = 0;
        if (es_frame_rx_byte(&rx, g_cap.bytes[i], &p, &len) == ES_RX_FRAME) {
            pb_istream_t is = pb_istream_from_buffer(p, len);
            memset(&g_resp, 0, sizeof(g_resp));
            CHECK(pb_decode(&is, edgespike_Frame_fields, &g_resp));
            g_resp_len = len;
            count++;
        }
    }
    g_cap.n = 0;
    return count;
}

static void send_req(uint32_t seq, pb_size_t tag)
{
    pb_ostream_t os = pb_ostream_from_buffer(g_payload, ES_MAX_FRAME_BYTES);
    size_t n;
    uint32_t crc;
    g_req.seq = seq;
    g_req.session = 0x5E551011u;
    g_req.which_body = tag;
    CHECK(pb_encode(&os, edgespike_Frame_fields, &g_req));
    crc = es_crc32(0, g_payload, os.bytes_written);
    memcpy(g_payload + os.bytes_written, &crc, 4); /* tests run on little-endian targets */
    n = es_cobs_encode(g_payload, os.bytes_written + 4u, g_wire, sizeof(g_wire) - 1u);
    g_wire[n++] = 0;
    es_link_rx(&g_link, g_wire, n);
}

/* The size of a Frame as encoded (what the device's tx buffer must hold). */
static size_t encoded_size(const edgespike_Frame *f)
{
    size_t n = 0;
    CHECK(pb_get_encoded_size(&n, edgespike_Frame_fields, f));
    return n;
}

/* Every answer at its largest: each field holds the value with the longest encoding. */
static void test_worst_case_encodings(void)
{
    static edgespike_Frame f;
    uint32_t k, j;
    size_t n;
    /* RunResult: ES_MAX_SCORES scores, ES_MAX_LAYERS layers, max_outputs spike events. */
    memset(&f, 0, sizeof(f));
    f.seq = 0xFFFFFFFFu;
    f.session = 0xFFFFFFFFu;
    f.which_body = edgespike_Frame_run_result_tag;
    f.body.run_result.prediction = INT32_MIN;
    f.body.run_result.scores_count = ES_MAX_SCORES;
    for (k = 0; k < ES_MAX_SCORES; k++) {
        f.body.run_result.scores[k] = INT64_MIN;
    }
    f.body.run_result.layers_count = ES_MAX_LAYERS;
    for (k = 0; k < ES_MAX_LAYERS; k++) {
        f.body.run_result.layers[k].input_events = 0xFFFFFFFFu;
        f.body.run_result.layers[k].synops = UINT64_MAX;
        f.body.run_result.layers[k].neuron_updates = 0xFFFFFFFFu;
        f.body.run_result.layers[k].spikes = 0xFFFFFFFFu;
        f.body.run_result.layers[k].cycles = UINT64_MAX;
    }
    f.body.run_result.cycles = UINT64_MAX;
    f.body.run_result.cycle_source = edgespike_CycleSource_CYCLES_HOST_NS;
    f.body.run_result.output_spikes_count = ES_LINK_MAX_OUTPUTS;
    for (k = 0; k < ES_LINK_MAX_OUTPUTS; k++) {
        f.body.run_result.output_spikes[k] = 0xFFFFFFFFu;
    }
    f.body.run_result.spikes_truncated = true;
    n = encoded_size(&f);
    printf("limits: frame %u bytes, max_outputs %u, decisions per OutputBatch %u; "
           "largest RunResult %u bytes\n", (unsigned)ES_MAX_FRAME_BYTES,
           (unsigned)ES_LINK_MAX_OUTPUTS, (unsigned)ES_LINK_STREAM_DECISIONS, (unsigned)n);
    CHECK(n <= ES_MAX_FRAME_BYTES);
    /* the bound is the worst case, not a guess: 5 more bytes of spikes would not fit */
    CHECK(ES_LINK_MAX_OUTPUTS == ES_MAX_OUTPUT_EVENTS || n + 5u > ES_MAX_FRAME_BYTES - 16u);

    /* OutputBatch: the decisions one frame carries, each with ES_MAX_SCORES scores, and
     * max_outputs spike events. */
    memset(&f, 0, sizeof(f));
    f.seq = 0xFFFFFFFFu;
    f.session = 0xFFFFFFFFu;
    f.which_body = edgespike_Frame_output_batch_tag;
    {
        edgespike_OutputBatch *o = &f.body.output_batch;
        o->out_seq = o->acked_seq = o->credit_limit = 0xFFFFFFFFu;
        o->steps_run = o->items_received = o->batches_received = 0xFFFFFFFFu;
        o->window = o->hop = o->step_us = o->max_batch_steps = o->max_batch_items = 0xFFFFFFFFu;
        o->stalls = o->spikes_first_step = 0xFFFFFFFFu;
        o->device_time = UINT64_MAX;
        o->final = o->spikes_truncated = true;
        o->decisions_count = ES_LINK_STREAM_DECISIONS;
        for (j = 0; j < ES_LINK_STREAM_DECISIONS; j++) {
            edgespike_Decision *d = &o->decisions[j];
            d->index = d->end_step = 0xFFFFFFFFu;
            d->prediction = INT32_MIN;
            d->device_time = d->input_time = d->host_time_us = UINT64_MAX;
            d->scores_count = ES_MAX_SCORES;
            for (k = 0; k < ES_MAX_SCORES; k++) {
                d->scores[k] = INT64_MIN;
            }
        }
        o->output_spikes_count = ES_LINK_MAX_OUTPUTS;
        for (k = 0; k < ES_LINK_MAX_OUTPUTS; k++) {
            o->output_spikes[k] = 0xFFFFFFFFu;
        }
    }
    CHECK(ES_LINK_STREAM_DECISIONS >= 1u && ES_LINK_STREAM_DECISIONS <= ES_STREAM_MAX_DECISIONS);
    CHECK(encoded_size(&f) <= ES_MAX_FRAME_BYTES);

    /* The small answers: DeviceInfo with full strings, Stats, an Error with a full text. */
    memset(&f, 0, sizeof(f));
    f.seq = f.session = 0xFFFFFFFFu;
    f.which_body = edgespike_Frame_device_info_tag;
    memset(f.body.device_info.board, 'b', sizeof(f.body.device_info.board) - 1u);
    memset(f.body.device_info.core, 'c', sizeof(f.body.device_info.core) - 1u);
    memset(f.body.device_info.firmware_version, 'v',
           sizeof(f.body.device_info.firmware_version) - 1u);
    f.body.device_info.model_capacity_bytes = 0xFFFFFFFFu;
    CHECK(encoded_size(&f) <= ES_MAX_FRAME_BYTES);
    memset(&f, 0, sizeof(f));
    f.which_body = edgespike_Frame_error_tag;
    f.body.error.code = edgespike_ErrorCode_ERR_BUSY;
    memset(f.body.error.message, 'm', sizeof(f.body.error.message) - 1u);
    CHECK(encoded_size(&f) <= ES_MAX_FRAME_BYTES);
}

static void upload_late_model(void)
{
    size_t len = hex_decode(k_late_model[0][1], g_blob, sizeof(g_blob));
    memset(&g_req, 0, sizeof(g_req));
    g_req.body.model_begin.total_bytes = (uint32_t)len;
    g_req.body.model_begin.crc32 = es_crc32(0, g_blob, len);
    send_req(2, edgespike_Frame_model_begin_tag);
    CHECK(take_responses() == 1 && g_resp.which_body == edgespike_Frame_ack_tag);
    memset(&g_req, 0, sizeof(g_req));
    g_req.body.model_chunk.data.size = (pb_size_t)len;
    memcpy(g_req.body.model_chunk.data.bytes, g_blob, len);
    send_req(3, edgespike_Frame_model_chunk_tag);
    CHECK(take_responses() == 1 && g_resp.which_body == edgespike_Frame_ack_tag);
    memset(&g_req, 0, sizeof(g_req));
    send_req(4, edgespike_Frame_model_commit_tag);
    CHECK(take_responses() == 1 && g_resp.which_body == edgespike_Frame_ack_tag);
    CHECK(g_resp.body.ack.value == len);
}

/* Case 6 as reported: recorded spikes late in the run, more than max_outputs of them. */
static void test_late_spikes_fit(void)
{
    uint32_t k, errors_before, want;
    cap_link_init(&g_link, &g_cap);
    memset(&g_req, 0, sizeof(g_req));
    send_req(1, edgespike_Frame_hello_tag);
    CHECK(take_responses() == 1 && g_resp.which_body == edgespike_Frame_device_info_tag);
    CHECK(g_resp.body.device_info.max_outputs == ES_LINK_MAX_OUTPUTS);
    CHECK(g_resp.body.device_info.max_frame_bytes == ES_MAX_FRAME_BYTES);
    upload_late_model();
    memset(&g_req, 0, sizeof(g_req));
    send_req(10, edgespike_Frame_stats_request_tag);
    CHECK(take_responses() == 1 && g_resp.which_body == edgespike_Frame_stats_tag);
    errors_before = g_resp.body.stats.errors_sent;

    memset(&g_req, 0, sizeof(g_req));
    for (k = 0; k < ES_LATE_EVENTS; k++) {
        g_req.body.run.events[k] = (4096u + k) << 16;
    }
    g_req.body.run.events_count = ES_LATE_EVENTS;
    g_req.body.run.record_spikes = true;
    send_req(11, edgespike_Frame_run_tag);
    CHECK(take_responses() == 1);
    CHECK(g_resp.seq == 11 && g_resp.session == 0x5E551011u);
    CHECK(g_resp.which_body == edgespike_Frame_run_result_tag);
    if (g_resp.which_body != edgespike_Frame_run_result_tag) {
        printf("  got error %d: %s\n", (int)g_resp.body.error.code, g_resp.body.error.message);
        return;
    }
    CHECK(g_resp_len <= ES_MAX_FRAME_BYTES);
    want = ES_LATE_EVENTS * ES_LATE_OUTPUTS;
    if (want > ES_LINK_MAX_OUTPUTS) {
        want = ES_LINK_MAX_OUTPUTS;
    }
    CHECK(g_resp.body.run_result.output_spikes_count == want);
    CHECK(g_resp.body.run_result.spikes_truncated ==
          (ES_LATE_EVENTS * ES_LATE_OUTPUTS > ES_LINK_MAX_OUTPUTS));
    for (k = 0; k < g_resp.body.run_result.output_spikes_count; k++) {
        CHECK(g_resp.body.run_result.output_spikes[k] ==
              (((4096u + k / ES_LATE_OUTPUTS) << 16) | (k % ES_LATE_OUTPUTS)));
    }
    CHECK(g_resp.body.run_result.scores_count == ES_LATE_OUTPUTS);
    for (k = 0; k < g_resp.body.run_result.scores_count; k++) {
        CHECK(g_resp.body.run_result.scores[k] == ES_LATE_SCORE);
    }
    CHECK(g_resp.body.run_result.layers_count == 1 &&
          g_resp.body.run_result.layers[0].spikes == ES_LATE_EVENTS * ES_LATE_OUTPUTS);

    /* No error was sent for it; errors that are sent are all counted. */
    memset(&g_req, 0, sizeof(g_req));
    send_req(12, edgespike_Frame_stats_request_tag);
    CHECK(take_responses() == 1 && g_resp.body.stats.errors_sent == errors_before);
    CHECK(g_resp.body.stats.runs == 1u);
    {
        static const uint8_t junk[] = {0x05, 0x11, 0x22, 0x00}; /* bad COBS */
        memset(&g_req, 0, sizeof(g_req));
        g_req.body.run.events_count = 1;
        g_req.body.run.events[0] = 4400u << 16; /* step past the model's timesteps */
        send_req(13, edgespike_Frame_run_tag);
        CHECK(take_responses() == 1 && g_resp.which_body == edgespike_Frame_error_tag);
        es_link_rx(&g_link, junk, sizeof(junk));
        CHECK(take_responses() == 1 && g_resp.which_body == edgespike_Frame_error_tag);
        memset(&g_req, 0, sizeof(g_req));
        send_req(14, edgespike_Frame_stats_request_tag);
        CHECK(take_responses() == 1 && g_resp.body.stats.errors_sent == errors_before + 2u);
    }
}

int main(void)
{
    test_worst_case_encodings();
    test_late_spikes_fit();
    printf("test_limits: %s (%d failures)\n", g_fail == 0 ? "OK" : "FAILED", g_fail);
    return g_fail == 0 ? 0 : 1;
}
