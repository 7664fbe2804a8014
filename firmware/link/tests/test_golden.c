/*
 * The golden vectors of protocol/vectors/frames.json, checked from C (tests/test_vectors.py
 * checks the same bytes from Python). The header is generated from the JSON at build time.
 *   COBS:     every raw <-> encoded pair, both ways.
 *   frames:   the frame decoder yields the payload, nanopb decodes it to the stated message and
 *             encodes it back to the same bytes, and the frame encoder writes the same frame.
 *   negative: the link answers each with an Error of the stated code, and keeps serving.
 * Runs on the host and, with semihosting, in QEMU. Exit code = failures.
 */
#include <stdio.h>
#include <string.h>

#include "es_cobs.h"
#include "es_frame.h"
#include "es_test_capture.h"
#include "es_golden_vectors.h"
#include "es_link.h"
#include "pb_decode.h"
#include "pb_encode.h"

static int g_fail = 0;
#define CHECK(cond, name)                                                                 \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            printf("FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, (name), #cond);           \
            g_fail++;                                                                     \
        }                                                                                 \
    } while (0)

static capture_t g_cap;
static es_link_t g_link;
static edgespike_Frame g_msg;
static uint8_t g_buf[ES_MAX_FRAME_BYTES + 8u];
static uint8_t g_out[ES_COBS_MAX_ENCODED(ES_MAX_FRAME_BYTES + 8u) + 1u];

static void test_cobs(void)
{
    size_t i;
    for (i = 0; i < ES_GV_COUNT(es_gv_cobs); i++) {
        const es_gv_cobs_t *c = &es_gv_cobs[i];
        size_t n = es_cobs_encode(c->raw, c->raw_len, g_out, sizeof(g_out));
        long m = es_cobs_decode(c->cobs, c->cobs_len, g_buf, sizeof(g_buf));
        CHECK(n == c->cobs_len && memcmp(g_out, c->cobs, n) == 0, c->name);
        CHECK(m == (long)c->raw_len && memcmp(g_buf, c->raw, c->raw_len) == 0, c->name);
    }
}

static void test_frames(void)
{
    size_t i, k;
    for (i = 0; i < ES_GV_COUNT(es_gv_frames); i++) {
        const es_gv_frame_t *f = &es_gv_frames[i];
        es_frame_rx_t rx;
        const uint8_t *payload = NULL;
        size_t len = 0;
        int frames = 0;
        pb_istream_t is;
        pb_ostream_t os;

        es_frame_rx_init(&rx, g_buf, sizeof(g_buf));
        for (k = 0; k < f->frame_len; k++) {
            es_rx_event_t ev = es_frame_rx_byte(&rx, f->frame[k], &payload, &len);
            if (ev == ES_RX_FRAME) {
                frames++;
            } else {
                CHECK(ev == ES_RX_NONE, f->name);
            }
        }
        CHECK(frames == 1, f->name);
        if (frames != 1) {
            continue;
        }
        CHECK(len == f->payload_len && memcmp(payload, f->payload, len) == 0, f->name);

        memset(&g_msg, 0, sizeof(g_msg));
        is = pb_istream_from_buffer(f->payload, f->payload_len);
        CHECK(pb_decode(&is, edgespike_Frame_fields, &g_msg), f->name);
        CHECK(g_msg.seq == f->seq && g_msg.which_body == f->body_tag, f->name);

        os = pb_ostream_from_buffer(g_out, sizeof(g_out));
        CHECK(pb_encode(&os, edgespike_Frame_fields, &g_msg), f->name);
        CHECK(os.bytes_written == f->payload_len &&
                  memcmp(g_out, f->payload, f->payload_len) == 0, f->name);

        /* es_frame_send appends the CRC after the payload in the caller's buffer. */
        memcpy(g_buf, f->payload, f->payload_len);
        g_cap.n = 0;
        es_frame_send(g_buf, f->payload_len, cap_write, &g_cap);
        CHECK(!g_cap.overflow && g_cap.n == f->frame_len &&
                  memcmp(g_cap.bytes, f->frame, f->frame_len) == 0, f->name);
    }
}

/* The single answer the link sent since the last call, decoded into g_msg (0 if not one). */
static int one_answer(void)
{
    es_frame_rx_t rx;
    size_t k;
    int frames = 0;
    es_frame_rx_init(&rx, g_buf, sizeof(g_buf));
    for (k = 0; k < g_cap.n; k++) {
        const uint8_t *payload = NULL;
        size_t len = 0;
        if (es_frame_rx_byte(&rx, g_cap.bytes[k], &payload, &len) == ES_RX_FRAME) {
            pb_istream_t is = pb_istream_from_buffer(payload, len);
            memset(&g_msg, 0, sizeof(g_msg));
            frames += pb_decode(&is, edgespike_Frame_fields, &g_msg) ? 1 : 100;
        }
    }
    g_cap.n = 0;
    return frames == 1;
}

static void test_negative(void)
{
    static const uint8_t hello[] = {0x0b, 0x08, 0x01, 0x12, 0x02, 0x08, 0x01,
                                    0x9a, 0xfb, 0xbb, 0x26, 0x00}; /* frames.json "hello" */
    size_t i;
    cap_link_init(&g_link, &g_cap);
    CHECK(es_gv_frames[0].frame_len == sizeof(hello) &&
              memcmp(es_gv_frames[0].frame, hello, sizeof(hello)) == 0, "hello");
    for (i = 0; i < ES_GV_COUNT(es_gv_negative); i++) {
        const es_gv_negative_t *c = &es_gv_negative[i];
        g_cap.n = 0;
        es_link_rx(&g_link, c->frame, c->frame_len);
        CHECK(one_answer(), c->name);
        CHECK(g_msg.which_body == edgespike_Frame_error_tag && g_msg.body.error.code == c->error,
              c->name);
        if (g_msg.which_body != edgespike_Frame_error_tag || g_msg.body.error.code != c->error) {
            printf("  %s: expected error %d, got body %u code %d\n", c->name, (int)c->error,
                   (unsigned)g_msg.which_body, (int)g_msg.body.error.code);
        }
        /* ... and the device keeps serving. */
        es_link_rx(&g_link, hello, sizeof(hello));
        CHECK(one_answer() && g_msg.which_body == edgespike_Frame_device_info_tag, c->name);
    }
}

int main(void)
{
    test_cobs();
    test_frames();
    test_negative();
    printf("test_golden: %u frames, %u COBS cases, %u negative frames: %s (%d failures)\n",
           (unsigned)ES_GV_COUNT(es_gv_frames), (unsigned)ES_GV_COUNT(es_gv_cobs),
           (unsigned)ES_GV_COUNT(es_gv_negative), g_fail == 0 ? "OK" : "FAILED", g_fail);
    return g_fail == 0 ? 0 : 1;
}
