/*
 * Unit tests of the link: COBS, framing, the dispatcher's answers to good and bad requests,
 * and a fuzz loop (random bytes must never crash, hang or overrun; every answer must be a
 * well-formed frame). Runs on the host and, with semihosting, in QEMU. Exit code = failures.
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

/* Deterministic xorshift, so a failure reproduces. A longer fuzz run, by hand:
 * cc -DES_FUZZ_SEED=n -DES_FUZZ_SCALE=k ... (see the es_link_tests_asan target). */
#ifndef ES_FUZZ_SEED
#define ES_FUZZ_SEED 0x12345678u
#endif
#ifndef ES_FUZZ_SCALE
#define ES_FUZZ_SCALE 1u
#endif
static uint32_t g_rng = ES_FUZZ_SEED;
static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}

/* ---- capture of what the device sends (es_test_capture.h) ----------------------------- */
static capture_t g_cap;
static es_link_t g_link;
static uint8_t g_wire[ES_COBS_MAX_ENCODED(ES_MAX_FRAME_BYTES + 8u) + 1u];
static uint8_t g_payload[ES_MAX_FRAME_BYTES + 8u];
static uint8_t g_rxbuf[ES_MAX_FRAME_BYTES + 8u];
static edgespike_Frame g_req, g_resp;

/* Decode every frame the device sent since the last call; returns how many; the last one
 * lands in g_resp. Malformed output counts as a failure. */
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
        es_rx_event_t ev = es_frame_rx_byte(&rx, g_cap.bytes[i], &p, &len);
        if (ev == ES_RX_FRAME) {
            pb_istream_t is = pb_istream_from_buffer(p, len);
            memset(&g_resp, 0, sizeof(g_resp));
            CHECK(pb_decode(&is, edgespike_Frame_fields, &g_resp));
            count++;
        } else {
            CHECK(ev == ES_RX_NONE);
        }
    }
    /* Every answer ends with its delimiter. */
    CHECK(g_cap.n == 0 || g_cap.bytes[g_cap.n - 1] == 0);
    g_cap.n = 0;
    g_cap.overflow = 0;
    return count;
}

/* Serialize g_req into a wire frame and feed it to the device. */
static void send_req(void)
{
    pb_ostream_t os = pb_ostream_from_buffer(g_payload, ES_MAX_FRAME_BYTES);
    size_t n;
    uint32_t crc;
    CHECK(pb_encode(&os, edgespike_Frame_fields, &g_req));
    crc = es_crc32(0, g_payload, os.bytes_written);
    memcpy(g_payload + os.bytes_written, &crc, 4); /* tests run on little-endian targets */
    n = es_cobs_encode(g_payload, os.bytes_written + 4u, g_wire, sizeof(g_wire) - 1u);
    CHECK(n > 0);
    g_wire[n++] = 0;
    es_link_rx(&g_link, g_wire, n);
}

/* The link session new requests carry (0: none, as a host of protocol 1). */
static uint32_t g_session = 0;

static void new_req(uint32_t seq, pb_size_t tag)
{
    memset(&g_req, 0, sizeof(g_req));
    g_req.seq = seq;
    g_req.session = g_session;
    g_req.which_body = tag;
}

static void expect_error(uint32_t seq, edgespike_ErrorCode code)
{
    int n = take_responses();
    CHECK(n == 1);
    CHECK(g_resp.which_body == edgespike_Frame_error_tag);
    CHECK(g_resp.seq == seq);
    CHECK(g_resp.body.error.code == code);
    if (g_resp.which_body != edgespike_Frame_error_tag || g_resp.body.error.code != code) {
        printf("  expected error %d seq %u, got body %u code %d seq %u\n", (int)code,
               (unsigned)seq, (unsigned)g_resp.which_body, (int)g_resp.body.error.code,
               (unsigned)g_resp.seq);
    }
}

static void expect_ack(uint32_t seq, uint32_t value)
{
    CHECK(take_responses() == 1);
    CHECK(g_resp.which_body == edgespike_Frame_ack_tag);
    CHECK(g_resp.seq == seq);
    CHECK(g_resp.body.ack.value == value);
}

static void hello_ok(uint32_t seq)
{
    new_req(seq, edgespike_Frame_hello_tag);
    g_req.body.hello.protocol_version = 1;
    send_req();
    CHECK(take_responses() == 1);
    CHECK(g_resp.which_body == edgespike_Frame_device_info_tag);
    CHECK(g_resp.seq == seq);
}

/* protocol/vectors/model_small.bin (golden vector, 157 bytes): int8 dense 4 -> 3, then a
 * ternary recurrent 3 -> 2; its example input and results are in model_small.json. */
static const uint8_t k_model_small[157] = {
    0x08, 0x01, 0x12, 0x05, 0x73, 0x6d, 0x61, 0x6c, 0x6c, 0x18, 0x04, 0x28, 0x01, 0x30, 0x06, 0x42,
    0x2e, 0x10, 0x03, 0x1a, 0x14, 0x08, 0x04, 0x10, 0x03, 0x22, 0x0c, 0x03, 0xfe, 0x00, 0x01, 0x00,
    0x05, 0xfc, 0x07, 0x02, 0x00, 0x01, 0xff, 0x28, 0x04, 0x2a, 0x0c, 0x08, 0x80, 0x08, 0x10, 0x80,
    0x04, 0x18, 0x0a, 0x28, 0x06, 0x38, 0x01, 0x32, 0x06, 0x68, 0x69, 0x64, 0x64, 0x65, 0x6e, 0x42,
    0x44, 0x08, 0x01, 0x10, 0x02, 0x1a, 0x15, 0x08, 0x03, 0x10, 0x02, 0x18, 0x01, 0x22, 0x03, 0x01,
    0x06, 0x08, 0x28, 0x06, 0x42, 0x02, 0x02, 0x03, 0x4a, 0x02, 0x01, 0x04, 0x22, 0x0e, 0x08, 0x02,
    0x10, 0x02, 0x18, 0x01, 0x22, 0x02, 0x08, 0x01, 0x30, 0x02, 0x38, 0x01, 0x2a, 0x12, 0x08, 0x80,
    0x20, 0x10, 0x80, 0x02, 0x22, 0x08, 0x06, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x40, 0x01,
    0x32, 0x03, 0x6f, 0x75, 0x74, 0x48, 0xe8, 0x07, 0x52, 0x00, 0x5a, 0x04, 0x6c, 0x65, 0x66, 0x74,
    0x5a, 0x05, 0x72, 0x69, 0x67, 0x68, 0x74, 0xc5, 0x3e, 0xbe, 0x6e, 0x9a, 0x31
};
static const uint32_t k_example_events[10] = {0, 2, 65537, 65538, 131074,
                                              196608, 196609, 196610, 262146, 327683};

/* ---- tests ------------------------------------------------------------------------------- */
static void test_cobs(void)
{
    static uint8_t in[700], enc[ES_COBS_MAX_ENCODED(700u)], dec[700];
    size_t len, n, k;
    for (len = 0; len < 700; len += (len < 300 ? 1u : 37u)) {
        for (k = 0; k < len; k++) {
            uint32_t r = rnd();
            in[k] = (r & 3u) == 0 ? 0 : (uint8_t)(r >> 8);
        }
        if (len == 600) { /* long zero-free runs: the 254-byte block rule */
            for (k = 0; k < len; k++) {
                in[k] = (uint8_t)(1u + k % 255u);
            }
        }
        n = es_cobs_encode(in, len, enc, sizeof(enc));
        CHECK(n > 0 && n <= ES_COBS_MAX_ENCODED(len));
        CHECK(memchr(enc, 0, n) == NULL);
        CHECK(es_cobs_decode(enc, n, dec, sizeof(dec)) == (long)len);
        CHECK(memcmp(in, dec, len) == 0);
        if (len > 0) {
            /* Too small an output buffer is refused, not overrun. */
            CHECK(es_cobs_encode(in, len, enc, len) == 0);
            CHECK(es_cobs_decode(enc, n, dec, len - 1u) == -1);
        }
    }
    /* Known vectors (Wikipedia's COBS examples). */
    {
        static const uint8_t a[] = {0x11, 0x22, 0x00, 0x33};
        static const uint8_t ea[] = {0x03, 0x11, 0x22, 0x02, 0x33};
        static const uint8_t b[] = {0x00, 0x00};
        static const uint8_t eb[] = {0x01, 0x01, 0x01};
        CHECK(es_cobs_encode(a, 4, enc, sizeof(enc)) == 5 && memcmp(enc, ea, 5) == 0);
        CHECK(es_cobs_encode(b, 2, enc, sizeof(enc)) == 3 && memcmp(enc, eb, 3) == 0);
    }
    /* Malformed: a block running past the end, an embedded zero. */
    {
        static const uint8_t bad1[] = {0x05, 0x11, 0x22};
        static const uint8_t bad2[] = {0x03, 0x00, 0x22};
        CHECK(es_cobs_decode(bad1, 3, dec, sizeof(dec)) == -1);
        CHECK(es_cobs_decode(bad2, 3, dec, sizeof(dec)) == -1);
    }
}

static void test_frames(void)
{
    /* CRC-32 check value. */
    CHECK(es_crc32(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u);
    hello_ok(7);
    CHECK(g_resp.body.device_info.protocol_version == ES_PROTOCOL_VERSION);
    CHECK(g_resp.body.device_info.max_frame_bytes == ES_MAX_FRAME_BYTES);
    CHECK(g_resp.body.device_info.model_capacity_bytes == ES_MODEL_CAPACITY);
    CHECK(!g_resp.body.device_info.model_loaded);
    CHECK(strcmp(g_resp.body.device_info.board, "test") == 0);

    /* Two requests in one write, and a request split byte by byte. */
    {
        size_t n, i;
        new_req(1, edgespike_Frame_hello_tag);
        send_req();
        new_req(2, edgespike_Frame_stats_request_tag);
        send_req();
        CHECK(take_responses() == 2);
        CHECK(g_resp.seq == 2 && g_resp.which_body == edgespike_Frame_stats_tag);
        new_req(3, edgespike_Frame_hello_tag);
        {
            pb_ostream_t os = pb_ostream_from_buffer(g_payload, ES_MAX_FRAME_BYTES);
            uint32_t crc;
            CHECK(pb_encode(&os, edgespike_Frame_fields, &g_req));
            crc = es_crc32(0, g_payload, os.bytes_written);
            memcpy(g_payload + os.bytes_written, &crc, 4);
            n = es_cobs_encode(g_payload, os.bytes_written + 4u, g_wire, sizeof(g_wire) - 1u);
            g_wire[n++] = 0;
        }
        for (i = 0; i < n; i++) {
            es_link_rx(&g_link, g_wire + i, 1);
        }
        CHECK(take_responses() == 1 && g_resp.seq == 3);
    }

    /* Bad CRC: flip one payload bit of a good frame. */
    {
        pb_ostream_t os = pb_ostream_from_buffer(g_payload, ES_MAX_FRAME_BYTES);
        uint32_t crc;
        size_t n;
        new_req(9, edgespike_Frame_hello_tag);
        CHECK(pb_encode(&os, edgespike_Frame_fields, &g_req));
        crc = es_crc32(0, g_payload, os.bytes_written) ^ 1u;
        memcpy(g_payload + os.bytes_written, &crc, 4);
        n = es_cobs_encode(g_payload, os.bytes_written + 4u, g_wire, sizeof(g_wire) - 1u);
        g_wire[n++] = 0;
        es_link_rx(&g_link, g_wire, n);
        expect_error(0, edgespike_ErrorCode_ERR_BAD_CRC);
    }
    /* Bad COBS, and a frame shorter than its CRC. */
    {
        static const uint8_t bad[] = {0x05, 0x11, 0x22, 0x00};
        static const uint8_t shortf[] = {0x03, 0x11, 0x22, 0x00};
        static const uint8_t empty[] = {0x00, 0x00, 0x00};
        es_link_rx(&g_link, bad, sizeof(bad));
        expect_error(0, edgespike_ErrorCode_ERR_BAD_FRAME);
        es_link_rx(&g_link, shortf, sizeof(shortf));
        expect_error(0, edgespike_ErrorCode_ERR_BAD_FRAME);
        es_link_rx(&g_link, empty, sizeof(empty));
        CHECK(take_responses() == 0);
    }
    /* Too long: answered once, then the link works again. */
    {
        size_t i;
        uint8_t b = 0x7F;
        for (i = 0; i < ES_MAX_FRAME_BYTES + 600u; i++) {
            es_link_rx(&g_link, &b, 1);
        }
        CHECK(take_responses() == 0);
        b = 0;
        es_link_rx(&g_link, &b, 1);
        expect_error(0, edgespike_ErrorCode_ERR_FRAME_TOO_LONG);
        hello_ok(10);
    }
    /* Good CRC, payload that is no protobuf. */
    {
        uint8_t junk[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0};
        uint32_t crc = es_crc32(0, junk, 4);
        size_t n;
        memcpy(junk + 4, &crc, 4);
        n = es_cobs_encode(junk, 8, g_wire, sizeof(g_wire) - 1u);
        g_wire[n++] = 0;
        es_link_rx(&g_link, g_wire, n);
        expect_error(0, edgespike_ErrorCode_ERR_DECODE);
    }
    /* A body the device does not serve, and no body at all. */
    new_req(11, edgespike_Frame_device_info_tag);
    send_req();
    expect_error(11, edgespike_ErrorCode_ERR_UNKNOWN_MESSAGE);
    new_req(12, 0);
    send_req();
    expect_error(12, edgespike_ErrorCode_ERR_UNKNOWN_MESSAGE);
}

static void test_upload_errors(void)
{
    /* Run with no model. */
    new_req(20, edgespike_Frame_run_tag);
    g_req.body.run.events_count = 1;
    send_req();
    expect_error(20, edgespike_ErrorCode_ERR_NO_MODEL);
    /* Chunk / commit without begin. */
    new_req(21, edgespike_Frame_model_chunk_tag);
    g_req.body.model_chunk.data.size = 4;
    send_req();
    expect_error(21, edgespike_ErrorCode_ERR_UPLOAD_NOT_STARTED);
    new_req(22, edgespike_Frame_model_commit_tag);
    send_req();
    expect_error(22, edgespike_ErrorCode_ERR_UPLOAD_NOT_STARTED);
    /* Too large at begin. */
    new_req(23, edgespike_Frame_model_begin_tag);
    g_req.body.model_begin.total_bytes = ES_MODEL_CAPACITY + 1u;
    send_req();
    expect_error(23, edgespike_ErrorCode_ERR_MODEL_TOO_LARGE);
    /* Begin, a chunk at the wrong offset, an incomplete commit, a CRC mismatch. */
    {
        static const uint8_t blob[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        new_req(24, edgespike_Frame_model_begin_tag);
        g_req.body.model_begin.total_bytes = 10;
        g_req.body.model_begin.crc32 = es_crc32(0, blob, 10) ^ 0x80u;
        send_req();
        expect_ack(24, 0);
        new_req(25, edgespike_Frame_model_chunk_tag);
        g_req.body.model_chunk.offset = 4;
        g_req.body.model_chunk.data.size = 4;
        send_req();
        expect_error(25, edgespike_ErrorCode_ERR_UPLOAD_OFFSET);
        new_req(26, edgespike_Frame_model_chunk_tag);
        g_req.body.model_chunk.offset = 0;
        g_req.body.model_chunk.data.size = 6;
        memcpy(g_req.body.model_chunk.data.bytes, blob, 6);
        send_req();
        expect_ack(26, 6);
        new_req(27, edgespike_Frame_model_commit_tag);
        send_req();
        expect_error(27, edgespike_ErrorCode_ERR_UPLOAD_INCOMPLETE);
        new_req(28, edgespike_Frame_model_chunk_tag);
        g_req.body.model_chunk.offset = 6;
        g_req.body.model_chunk.data.size = 5; /* one past total_bytes */
        send_req();
        expect_error(28, edgespike_ErrorCode_ERR_UPLOAD_OFFSET);
        g_req.body.model_chunk.data.size = 4;
        memcpy(g_req.body.model_chunk.data.bytes, blob + 6, 4);
        send_req();
        expect_ack(28, 10);
        new_req(29, edgespike_Frame_model_commit_tag);
        send_req();
        expect_error(29, edgespike_ErrorCode_ERR_MODEL_CRC);
        /* The upload is consumed: a second commit has nothing to commit. */
        send_req();
        expect_error(29, edgespike_ErrorCode_ERR_UPLOAD_NOT_STARTED);
        /* Right transport CRC, but not a model: the engine's validator refuses it. */
        new_req(30, edgespike_Frame_model_begin_tag);
        g_req.body.model_begin.total_bytes = 10;
        g_req.body.model_begin.crc32 = es_crc32(0, blob, 10);
        send_req();
        expect_ack(30, 0);
        new_req(31, edgespike_Frame_model_chunk_tag);
        g_req.body.model_chunk.data.size = 10;
        memcpy(g_req.body.model_chunk.data.bytes, blob, 10);
        send_req();
        expect_ack(31, 10);
        new_req(32, edgespike_Frame_model_commit_tag);
        send_req();
        CHECK(take_responses() == 1);
        CHECK(g_resp.which_body == edgespike_Frame_error_tag && g_resp.seq == 32);
        CHECK(g_resp.body.error.code != edgespike_ErrorCode_ERR_NONE);
        hello_ok(33);
        CHECK(!g_resp.body.device_info.model_loaded);
    }
    /* Stats count what happened; Reset clears them. */
    new_req(34, edgespike_Frame_stats_request_tag);
    send_req();
    CHECK(take_responses() == 1 && g_resp.which_body == edgespike_Frame_stats_tag);
    CHECK(g_resp.body.stats.uploads_rejected >= 2u);
    CHECK(g_resp.body.stats.frames_bad_crc >= 1u);
    CHECK(g_resp.body.stats.frames_too_long >= 1u);
    CHECK(g_resp.body.stats.errors_sent >= 10u);
    new_req(35, edgespike_Frame_reset_tag);
    send_req();
    expect_ack(35, 0);
    new_req(36, edgespike_Frame_stats_request_tag);
    send_req();
    CHECK(take_responses() == 1 && g_resp.body.stats.errors_sent == 0u);
}

static void upload_small(uint32_t seq, uint32_t chunk)
{
    uint32_t off;
    new_req(seq, edgespike_Frame_model_begin_tag);
    g_req.body.model_begin.total_bytes = sizeof(k_model_small);
    g_req.body.model_begin.crc32 = es_crc32(0, k_model_small, sizeof(k_model_small));
    send_req();
    expect_ack(seq, 0);
    for (off = 0; off < sizeof(k_model_small); off += chunk) {
        uint32_t n = sizeof(k_model_small) - off < chunk ? sizeof(k_model_small) - off : chunk;
        new_req(seq + 1u, edgespike_Frame_model_chunk_tag);
        g_req.body.model_chunk.offset = off;
        g_req.body.model_chunk.data.size = n;
        memcpy(g_req.body.model_chunk.data.bytes, k_model_small + off, n);
        send_req();
        expect_ack(seq + 1u, off + n);
    }
    new_req(seq + 2u, edgespike_Frame_model_commit_tag);
    send_req();
    expect_ack(seq + 2u, sizeof(k_model_small));
}

static void run_example(uint32_t seq)
{
    new_req(seq, edgespike_Frame_run_tag);
    memcpy(g_req.body.run.events, k_example_events, sizeof(k_example_events));
    g_req.body.run.events_count = 10;
    g_req.body.run.record_spikes = true;
    send_req();
    CHECK(take_responses() == 1);
    CHECK(g_resp.seq == seq && g_resp.which_body == edgespike_Frame_run_result_tag);
    CHECK(g_resp.body.run_result.prediction == 1);
    CHECK(g_resp.body.run_result.scores_count == 2);
    CHECK(g_resp.body.run_result.scores[0] == 0 && g_resp.body.run_result.scores[1] == 1);
    CHECK(g_resp.body.run_result.layers_count == 2);
    CHECK(g_resp.body.run_result.layers[0].synops == 25u && g_resp.body.run_result.layers[1].synops == 18u);
    CHECK(g_resp.body.run_result.layers[0].spikes == 11u && g_resp.body.run_result.layers[1].spikes == 1u);
    CHECK(g_resp.body.run_result.output_spikes_count == 1 && g_resp.body.run_result.output_spikes[0] == 1u);
}

static void test_upload_and_run(void)
{
    upload_small(40, 50);
    hello_ok(43);
    CHECK(g_resp.body.device_info.model_loaded);
    CHECK(g_resp.body.device_info.model_bytes == sizeof(k_model_small));
    CHECK(g_resp.body.device_info.model_crc32 == 0x319a6ebeu);
    run_example(44);
    /* Bad input: unsorted events, and values for a spike model. */
    new_req(45, edgespike_Frame_run_tag);
    g_req.body.run.events[0] = 3;
    g_req.body.run.events[1] = 1;
    g_req.body.run.events_count = 2;
    send_req();
    expect_error(45, edgespike_ErrorCode_ERR_BAD_INPUT);
    new_req(46, edgespike_Frame_run_tag);
    g_req.body.run.values_count = 24;
    send_req();
    expect_error(46, edgespike_ErrorCode_ERR_BAD_INPUT);
    /* A failing upload leaves the committed model running; a new begin abandons one. */
    new_req(47, edgespike_Frame_model_begin_tag);
    g_req.body.model_begin.total_bytes = 100;
    send_req();
    expect_ack(47, 0);
    upload_small(48, 4096); /* abandons the one above */
    run_example(51);
    new_req(52, edgespike_Frame_model_begin_tag);
    g_req.body.model_begin.total_bytes = 5;
    send_req();
    expect_ack(52, 0);
    run_example(53); /* runs during an open upload */
}

/* ---- streaming ------------------------------------------------------------------------- */
/* Golden payloads from protocol/vectors/frames.json (tests/test_vectors.py checks that these
 * copies equal the file): the decoder must read them, the encoder must write them. */
static const char *const k_stream_vectors[][2] = {
    {"event_batch_events", "08167a1608011803220701808004838008388080f9c0c1c48203"},
    {"event_batch_samples", "08187a0e080118023208c801c701ca01c101"},
    {"output_batch_credit", "08148201160801180830959aef3a500c580460904e688002708008"},
    {"output_batch_decisions", "08148201320802100118092218100b18022203040a0528d00f30dc0b388080f9c0c1c482032a040180800830b410380c401e480190010a"},
    {"stream_start_raw", "0815720a200130013a04060af001"},
};

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (h[0] != '\0' && h[1] != '\0' && n < cap) {
        unsigned hi = (unsigned)(h[0] <= '9' ? h[0] - '0' : h[0] - 'a' + 10);
        unsigned lo = (unsigned)(h[1] <= '9' ? h[1] - '0' : h[1] - 'a' + 10);
        out[n++] = (uint8_t)((hi << 4) | lo);
        h += 2;
    }
    return n;
}

static int decode_vector(int k, edgespike_Frame *f)
{
    static uint8_t buf[256];
    size_t n = unhex(k_stream_vectors[k][1], buf, sizeof(buf));
    pb_istream_t is = pb_istream_from_buffer(buf, n);
    memset(f, 0, sizeof(*f));
    return pb_decode(&is, edgespike_Frame_fields, f) ? 1 : 0;
}

static int encodes_to(const edgespike_Frame *f, int k)
{
    static uint8_t want[256], got[512];
    size_t n = unhex(k_stream_vectors[k][1], want, sizeof(want));
    pb_ostream_t os = pb_ostream_from_buffer(got, sizeof(got));
    if (!pb_encode(&os, edgespike_Frame_fields, f)) {
        return 0;
    }
    return os.bytes_written == n && memcmp(got, want, n) == 0;
}

static void test_stream_vectors(void)
{
    static edgespike_Frame f;
    /* decode */
    CHECK(decode_vector(0, &f));
    CHECK(f.seq == 22 && f.which_body == edgespike_Frame_event_batch_tag);
    CHECK(f.body.event_batch.batch_seq == 1 && f.body.event_batch.n_steps == 3);
    CHECK(f.body.event_batch.events_count == 3 && f.body.event_batch.events[2] == 0x00020003u);
    CHECK(f.body.event_batch.host_time_us == 1700000000000000ull);
    CHECK(encodes_to(&f, 0));
    CHECK(decode_vector(1, &f));
    CHECK(f.body.event_batch.samples_count == 4 && f.body.event_batch.samples[3] == -97);
    CHECK(encodes_to(&f, 1));
    CHECK(decode_vector(4, &f));
    CHECK(f.which_body == edgespike_Frame_stream_start_tag && f.body.stream_start.raw_samples);
    CHECK(f.body.stream_start.delta_thresholds_count == 3 &&
          f.body.stream_start.delta_thresholds[2] == 120);
    CHECK(encodes_to(&f, 4));
    /* encode from scratch, as the device builds them */
    memset(&f, 0, sizeof(f));
    f.seq = 20;
    f.which_body = edgespike_Frame_output_batch_tag;
    f.body.output_batch.out_seq = 1;
    f.body.output_batch.credit_limit = 8;
    f.body.output_batch.device_time = 123456789u;
    f.body.output_batch.window = 12;
    f.body.output_batch.hop = 4;
    f.body.output_batch.step_us = 10000;
    f.body.output_batch.max_batch_steps = ES_STREAM_BATCH_STEPS;
    f.body.output_batch.max_batch_items = ES_STREAM_BATCH_ITEMS;
    CHECK(encodes_to(&f, 2));
    memset(&f, 0, sizeof(f));
    f.seq = 20;
    f.which_body = edgespike_Frame_output_batch_tag;
    {
        edgespike_OutputBatch *o = &f.body.output_batch;
        o->out_seq = 2;
        o->acked_seq = 1;
        o->credit_limit = 9;
        o->decisions_count = 1;
        o->decisions[0].index = 0;
        o->decisions[0].end_step = 11;
        o->decisions[0].prediction = 1;
        o->decisions[0].scores_count = 3;
        o->decisions[0].scores[0] = 2;
        o->decisions[0].scores[1] = 5;
        o->decisions[0].scores[2] = -3;
        o->decisions[0].device_time = 2000;
        o->decisions[0].input_time = 1500;
        o->decisions[0].host_time_us = 1700000000000000ull;
        o->output_spikes_count = 2;
        o->output_spikes[0] = 0x00000001u;
        o->output_spikes[1] = 0x00020000u;
        o->device_time = 2100;
        o->steps_run = 12;
        o->items_received = 30;
        o->batches_received = 1;
        o->spikes_first_step = 10;
    }
    CHECK(encodes_to(&f, 3));
}

/* A fake clock (ns) for pacing and the stall timeout. */
static uint64_t g_now_ns;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return g_now_ns;
}

static void send_batch(uint32_t seq, uint32_t batch_seq, uint32_t first_step, uint32_t n_steps,
                       const uint32_t *events, uint32_t n_events)
{
    new_req(seq, edgespike_Frame_event_batch_tag);
    g_req.body.event_batch.batch_seq = batch_seq;
    g_req.body.event_batch.first_step = first_step;
    g_req.body.event_batch.n_steps = n_steps;
    if (n_events > 0u) {
        memcpy(g_req.body.event_batch.events, events, n_events * 4u);
    }
    g_req.body.event_batch.events_count = n_events;
    send_req();
}

static void stream_start(uint32_t seq, bool free_run, uint32_t step_us)
{
    new_req(seq, edgespike_Frame_stream_start_tag);
    g_req.body.stream_start.free_run = free_run;
    g_req.body.stream_start.step_us = step_us;
    g_req.body.stream_start.record_spikes = true;
    send_req();
    CHECK(take_responses() == 1);
    CHECK(g_resp.seq == seq && g_resp.which_body == edgespike_Frame_output_batch_tag);
    CHECK(g_resp.body.output_batch.out_seq == 1 && g_resp.body.output_batch.acked_seq == 0);
    CHECK(g_resp.body.output_batch.credit_limit == ES_STREAM_SLOTS);
    CHECK(g_resp.body.output_batch.window == 6 && g_resp.body.output_batch.hop == 6);
}

static void test_stream(void)
{
    static int64_t want_scores[2];
    static uint32_t want_spikes[64];
    uint32_t n_want_spikes, k, polls;
    int32_t want_pred;
    /* The batch run of the example (model_small: 6 steps, spike count): the reference. */
    upload_small(60, 4096);
    run_example(61);
    want_pred = g_resp.body.run_result.prediction;
    want_scores[0] = g_resp.body.run_result.scores[0];
    want_scores[1] = g_resp.body.run_result.scores[1];
    n_want_spikes = g_resp.body.run_result.output_spikes_count;
    memcpy(want_spikes, g_resp.body.run_result.output_spikes, n_want_spikes * 4u);

    /* No stream open: batches and stops are refused. */
    send_batch(62, 1, 0, 1, NULL, 0);
    expect_error(62, edgespike_ErrorCode_ERR_NOT_STREAMING);

    /* Free-running: the example twice, each in two batches (steps 0..3, then 4..5 with
     * the events (4 << 16 | 2), (5 << 16 | 3) rebased): two windows, each the batch run's
     * decision and output spikes. */
    {
        static edgespike_Frame last;
        uint32_t decisions = 0, acked = 0, outs = 0, n_spikes = 0;
        uint32_t spikes[8];
        static const uint32_t tail[2] = {(0u << 16) | 2u, (1u << 16) | 3u};
        /* resend the two tails with their events: a new stream, same layout */
        stream_start(70, true, 0);
        for (k = 0; k < 2; k++) {
            send_batch(71 + 2 * k, 1 + 2 * k, 6 * k, 4, k_example_events, 8);
            send_batch(72 + 2 * k, 2 + 2 * k, 6 * k + 4, 2, tail, 2);
        }
        for (polls = 0; polls < 100 && es_link_poll(&g_link) == 0u; polls++) {
            int n = take_responses();
            outs += (uint32_t)n;
            if (n > 0) {
                last = g_resp;
                CHECK(g_resp.which_body == edgespike_Frame_output_batch_tag && g_resp.seq == 70);
                CHECK(g_resp.body.output_batch.out_seq == 1u + outs);
                for (k = 0; k < g_resp.body.output_batch.decisions_count; k++) {
                    const edgespike_Decision *d = &g_resp.body.output_batch.decisions[k];
                    CHECK(d->index == decisions && d->end_step == 6u * decisions + 5u);
                    CHECK(d->prediction == want_pred && d->scores_count == 2);
                    CHECK(d->scores[0] == want_scores[0] && d->scores[1] == want_scores[1]);
                    decisions++;
                }
                acked = g_resp.body.output_batch.acked_seq;
                for (k = 0; k < g_resp.body.output_batch.output_spikes_count && n_spikes < 8u; k++) {
                    uint32_t ev = g_resp.body.output_batch.output_spikes[k];
                    spikes[n_spikes++] = ((g_resp.body.output_batch.spikes_first_step +
                                           (ev >> 16)) << 16) | (ev & 0xFFFFu);
                }
            }
        }
        CHECK(polls == 12); /* one step per poll, then idle */
        CHECK(decisions == 2 && acked == 4);
        CHECK(last.body.output_batch.steps_run == 12 && last.body.output_batch.credit_limit == 12);
        /* each window's output spikes, at stream steps, equal the batch run's */
        CHECK(n_spikes == 2u * n_want_spikes);
        for (k = 0; k < n_want_spikes && k < 4u; k++) {
            CHECK(spikes[k] == want_spikes[k]);
            CHECK(spikes[n_want_spikes + k] == want_spikes[k] + (6u << 16));
        }
    }
    /* A gap: batch 5 expected, 6 sent. The stream ends. */
    send_batch(80, 6, 12, 1, NULL, 0);
    expect_error(80, edgespike_ErrorCode_ERR_STREAM_GAP);
    CHECK(g_resp.body.error.detail == 5);
    send_batch(81, 5, 12, 1, NULL, 0);
    expect_error(81, edgespike_ErrorCode_ERR_NOT_STREAMING);

    /* Credit: ES_STREAM_SLOTS batches queue without running; one more is refused. */
    stream_start(82, true, 0);
    for (k = 0; k < ES_STREAM_SLOTS; k++) {
        send_batch(83 + k, 1 + k, k, 1, NULL, 0);
    }
    CHECK(take_responses() == 0);
    send_batch(99, ES_STREAM_SLOTS + 1u, ES_STREAM_SLOTS, 1, NULL, 0);
    expect_error(99, edgespike_ErrorCode_ERR_NO_CREDIT);

    /* Another request ends an open stream (a final OutputBatch, then its answer). */
    stream_start(100, true, 0);
    new_req(101, edgespike_Frame_hello_tag);
    send_req();
    CHECK(take_responses() == 2 && g_resp.which_body == edgespike_Frame_device_info_tag);
    new_req(102, edgespike_Frame_stats_request_tag);
    send_req();
    CHECK(take_responses() == 1 && g_resp.body.stats.streams_aborted == 3u);
    CHECK(g_resp.body.stats.stream_gaps == 1u && g_resp.body.stats.streams_started == 3u);

    /* Paced, with a clock: step k runs k periods after the first batch arrived; a silent
     * host is dropped after the idle timeout. */
    g_link.port.cycles = fake_clock;
    g_link.port.cycles_per_us = 1000u;
    g_now_ns = 5000000u;
    stream_start(110, false, 1000);
    send_batch(111, 1, 0, 3, NULL, 0);
    CHECK(es_link_poll(&g_link) == 0u); /* step 0 runs at once */
    CHECK(es_link_poll(&g_link) == 1000u); /* step 1 is due in 1 ms */
    g_now_ns += 999000u;
    CHECK(es_link_poll(&g_link) == 1u);
    g_now_ns += 1000u;
    CHECK(es_link_poll(&g_link) == 0u);
    g_now_ns += 1000000u;
    CHECK(es_link_poll(&g_link) == 0u); /* step 2: batch done, acknowledged */
    CHECK(take_responses() == 1 && g_resp.body.output_batch.acked_seq == 1u);
    CHECK(g_resp.body.output_batch.steps_run == 3u && g_resp.body.output_batch.stalls == 0u);
    {
        uint32_t wait = es_link_poll(&g_link);
        CHECK(wait > 0u && wait <= ES_STREAM_IDLE_TIMEOUT_MS * 1000u);
    }
    g_now_ns += (uint64_t)ES_STREAM_IDLE_TIMEOUT_MS * 1000000u;
    CHECK(es_link_poll(&g_link) == ES_LINK_IDLE);
    CHECK(take_responses() == 1 && g_resp.body.output_batch.final);
    CHECK(es_link_poll(&g_link) == ES_LINK_IDLE);
    g_link.port.cycles = NULL;
    g_link.port.cycles_per_us = 0u;
    run_example(120); /* back to idle, serving runs */
}

static edgespike_Stats stats_now(uint32_t seq)
{
    new_req(seq, edgespike_Frame_stats_request_tag);
    send_req();
    CHECK(take_responses() == 1 && g_resp.which_body == edgespike_Frame_stats_tag);
    return g_resp.body.stats;
}

/* Link sessions (FRAMING.md "Sessions"; issue 12, cases 7 and 12). */
static void test_sessions(void)
{
    static edgespike_Frame first;
    edgespike_Stats st;
    uint32_t k;
    /* Answers echo the request's session; DeviceInfo says protocol 2 and the true limit. */
    g_session = 0xA1A1A1A1u;
    hello_ok(1);
    CHECK(g_resp.session == 0xA1A1A1A1u);
    CHECK(g_resp.body.device_info.protocol_version == ES_PROTOCOL_VERSION);
    CHECK(g_resp.body.device_info.max_outputs == ES_LINK_MAX_OUTPUTS);

    /* A duplicated request (same seq), or a late copy of an older one, is dropped unanswered
     * and counted; the next newer one is served. Across a seq wrap, 1 is newer. */
    new_req(5, edgespike_Frame_hello_tag);
    send_req();
    send_req();
    CHECK(take_responses() == 1);
    new_req(4, edgespike_Frame_hello_tag);
    send_req();
    CHECK(take_responses() == 0);
    st = stats_now(6);
    CHECK(st.frames_stale == 2u);
    hello_ok(0x7FFFFFFFu);
    hello_ok(0xFFFFFFFEu);
    hello_ok(0xFFFFFFFFu);
    hello_ok(1);
    CHECK(stats_now(2).frames_stale == 2u);

    /* An upload belongs to its session: session A uploads every byte, session B's bare
     * commit is refused (case 12 on a UART, where the device cannot see the host change),
     * and the switch abandoned A's upload for good. */
    g_session = 0xAu;
    new_req(1, edgespike_Frame_model_begin_tag);
    g_req.body.model_begin.total_bytes = sizeof(k_model_small);
    g_req.body.model_begin.crc32 = es_crc32(0, k_model_small, sizeof(k_model_small));
    send_req();
    expect_ack(1, 0);
    new_req(2, edgespike_Frame_model_chunk_tag);
    g_req.body.model_chunk.data.size = sizeof(k_model_small);
    memcpy(g_req.body.model_chunk.data.bytes, k_model_small, sizeof(k_model_small));
    send_req();
    expect_ack(2, sizeof(k_model_small));
    g_session = 0xBu;
    new_req(1, edgespike_Frame_model_commit_tag);
    send_req();
    expect_error(1, edgespike_ErrorCode_ERR_UPLOAD_NOT_STARTED);
    CHECK(g_resp.session == 0xBu);
    g_session = 0xAu;
    new_req(3, edgespike_Frame_model_commit_tag);
    send_req();
    expect_error(3, edgespike_ErrorCode_ERR_UPLOAD_NOT_STARTED);
    /* ... and a port that sees the connection go abandons it too (the host device). */
    upload_small(10, 4096);
    run_example(13);
    new_req(14, edgespike_Frame_model_begin_tag);
    g_req.body.model_begin.total_bytes = sizeof(k_model_small);
    g_req.body.model_begin.crc32 = es_crc32(0, k_model_small, sizeof(k_model_small));
    send_req();
    expect_ack(14, 0);
    es_link_disconnected(&g_link);
    new_req(15, edgespike_Frame_model_commit_tag);
    send_req();
    expect_error(15, edgespike_ErrorCode_ERR_UPLOAD_NOT_STARTED);

    /* Case 7: host A streams (StreamStart seq 1) and vanishes; host B's first request, also
     * seq 1, ends A's stream: the final OutputBatch carries A's session, B's answer its own,
     * so B tells them apart although both have seq 1. */
    g_session = 0xAAAAAAAAu;
    stream_start(1, true, 0);
    CHECK(g_resp.session == 0xAAAAAAAAu);
    send_batch(2, 1, 0, 4, k_example_events, 8);
    CHECK(es_link_poll(&g_link) == 0u);
    CHECK(take_responses() == 0); /* mid-batch: nothing due yet */
    g_session = 0xBBBBBBBBu;
    new_req(1, edgespike_Frame_hello_tag);
    send_req();
    {
        /* take_responses keeps only the last frame: decode the two by hand */
        es_frame_rx_t rx;
        size_t i;
        int n = 0;
        es_frame_rx_init(&rx, g_rxbuf, sizeof(g_rxbuf));
        for (i = 0; i < g_cap.n; i++) {
            const uint8_t *p = NULL;
            size_t len = 0;
            if (es_frame_rx_byte(&rx, g_cap.bytes[i], &p, &len) == ES_RX_FRAME) {
                pb_istream_t is = pb_istream_from_buffer(p, len);
                edgespike_Frame *f = n == 0 ? &first : &g_resp;
                memset(f, 0, sizeof(*f));
                CHECK(pb_decode(&is, edgespike_Frame_fields, f));
                n++;
            }
        }
        g_cap.n = 0;
        CHECK(n == 2);
    }
    CHECK(first.seq == 1 && first.session == 0xAAAAAAAAu);
    CHECK(first.which_body == edgespike_Frame_output_batch_tag && first.body.output_batch.final);
    CHECK(g_resp.seq == 1 && g_resp.session == 0xBBBBBBBBu);
    CHECK(g_resp.which_body == edgespike_Frame_device_info_tag);
    CHECK(es_link_poll(&g_link) == ES_LINK_IDLE); /* the stream is over */
    /* A frame the device cannot read is answered (seq 0) in the current session. */
    {
        static const uint8_t bad[] = {0x05, 0x11, 0x22, 0x00};
        es_link_rx(&g_link, bad, sizeof(bad));
        expect_error(0, edgespike_ErrorCode_ERR_BAD_FRAME);
        CHECK(g_resp.session == 0xBBBBBBBBu);
    }

    /* Every Error frame sent is counted, and nothing else. */
    new_req(2, edgespike_Frame_reset_tag);
    send_req();
    expect_ack(2, 0);
    for (k = 0; k < 3u; k++) {
        new_req(3 + k, edgespike_Frame_model_commit_tag);
        send_req();
        expect_error(3 + k, edgespike_ErrorCode_ERR_UPLOAD_NOT_STARTED);
    }
    hello_ok(6);
    st = stats_now(7);
    CHECK(st.errors_sent == 3u && st.frames_stale == 0u);
    g_session = 0;
}

static void test_fuzz(void)
{
    static uint8_t chunk[512];
    uint32_t round, k, runs_ok = 0, runs_bad = 0;
    for (round = 0; round < 400u * ES_FUZZ_SCALE; round++) {
        uint32_t n = rnd() % sizeof(chunk);
        for (k = 0; k < n; k++) {
            uint32_t r = rnd();
            /* Mix zeros (frame ends), small codes and random bytes. */
            chunk[k] = (r & 15u) == 0 ? 0 : ((r & 15u) == 1 ? (uint8_t)(r >> 8 & 7u) : (uint8_t)(r >> 16));
        }
        es_link_rx(&g_link, chunk, n);
        (void)take_responses();
        /* Now and then, a well-formed request with an arbitrary body. */
        if (round % 8u == 0u) {
            uint32_t seq = rnd();
            pb_size_t tag = (pb_size_t)(2u + rnd() % 12u);
            /* No Reset here: it would clear the counters checked below. */
            new_req(seq, tag == edgespike_Frame_reset_tag ? edgespike_Frame_hello_tag : tag);
            send_req();
            (void)take_responses();
        }
    }
    /* The device still answers properly, and the noise did reach each rejection path. */
    chunk[0] = 0;
    es_link_rx(&g_link, chunk, 1);
    (void)take_responses();
    hello_ok(99);
    new_req(100, edgespike_Frame_stats_request_tag);
    send_req();
    CHECK(take_responses() == 1 && g_resp.which_body == edgespike_Frame_stats_tag);
    printf("fuzz: %u ok, %u bad crc, %u bad cobs, %u too long, %u errors sent\n",
           (unsigned)g_resp.body.stats.frames_ok, (unsigned)g_resp.body.stats.frames_bad_crc,
           (unsigned)g_resp.body.stats.frames_bad_cobs, (unsigned)g_resp.body.stats.frames_too_long,
           (unsigned)g_resp.body.stats.errors_sent);
    CHECK(g_resp.body.stats.frames_bad_crc > 0u && g_resp.body.stats.frames_bad_cobs > 0u);
    /* Mutated requests with a correct CRC: these reach the protobuf decoder and the handlers
     * (oversized counts and lengths, wrong wire types, truncations, garbage bodies). */
    for (round = 0; round < 3000u * ES_FUZZ_SCALE; round++) {
        pb_ostream_t os = pb_ostream_from_buffer(g_payload, ES_MAX_FRAME_BYTES);
        size_t len, n, flips;
        uint32_t crc, seq = rnd();
        if (round % 500u == 0u) {
            upload_small(1000u + round, 64); /* so that Runs reach the engine */
        }
        new_req(seq, (pb_size_t)(2u + rnd() % 12u));
        if (g_req.which_body == edgespike_Frame_run_tag) {
            /* Half the time sorted and in range (step < 6, index < 4): valid input. */
            g_req.body.run.events_count = (round & 1u) ? rnd() % 25u : rnd() % 64u;
            g_req.body.run.values_count = (rnd() & 3u) == 0u ? rnd() % 64u : 0u;
            for (k = 0; k < 64u; k++) {
                g_req.body.run.events[k] = (round & 1u) ? (((k / 4u) << 16) | (k % 4u))
                                                        : (rnd() & 0x0007000Fu);
                g_req.body.run.values[k] = (int32_t)(rnd() % 200u) - 100;
            }
        } else if (g_req.which_body == edgespike_Frame_model_chunk_tag) {
            g_req.body.model_chunk.offset = rnd() % 32u;
            g_req.body.model_chunk.data.size = rnd() % 300u;
        } else if (g_req.which_body == edgespike_Frame_model_begin_tag) {
            g_req.body.model_begin.total_bytes = rnd() % 400u;
        }
        if (!pb_encode(&os, edgespike_Frame_fields, &g_req)) {
            continue; /* e.g. a body with fields only a device may send */
        }
        len = os.bytes_written;
        /* A third of them intact, so that valid requests keep reaching the engine. */
        for (flips = rnd() % 3u == 0u ? 0u : 1u + rnd() % 4u; flips > 0u; flips--) {
            uint32_t r = rnd();
            if (len > 0u) {
                g_payload[r % len] = (uint8_t)(r >> 16);
            }
            if ((r & 0x300u) == 0u && len > 1u) {
                len = (size_t)(rnd() % len); /* truncate */
            }
        }
        crc = es_crc32(0, g_payload, len);
        memcpy(g_payload + len, &crc, 4);
        n = es_cobs_encode(g_payload, len + 4u, g_wire, sizeof(g_wire) - 1u);
        g_wire[n++] = 0;
        es_link_rx(&g_link, g_wire, n);
        CHECK(take_responses() == 1);
        if (g_resp.which_body == edgespike_Frame_run_result_tag) {
            runs_ok++;
        } else if (g_resp.which_body == edgespike_Frame_error_tag &&
                   g_resp.body.error.code == edgespike_ErrorCode_ERR_BAD_INPUT) {
            runs_bad++;
        }
    }
    new_req(101, edgespike_Frame_stats_request_tag);
    send_req();
    CHECK(take_responses() == 1 && g_resp.which_body == edgespike_Frame_stats_tag);
    printf("mutated: %u runs completed, %u refused as bad input\n", (unsigned)runs_ok,
           (unsigned)runs_bad);
    CHECK(runs_ok > 0u && runs_bad > 0u);
    hello_ok(102);
}

int main(void)
{
    cap_link_init(&g_link, &g_cap);
    test_cobs();
    test_frames();
    test_upload_errors();
    test_upload_and_run();
    test_stream_vectors();
    test_stream();
    test_sessions();
    test_fuzz();
    printf("test_link: %s (%d failures)\n", g_fail == 0 ? "OK" : "FAILED", g_fail);
    return g_fail == 0 ? 0 : 1;
}
