/*
 * What the link harnesses (fuzz_link.c, fuzz_stream.c) share: a test port with a clock the
 * input drives, a byte sink that checks every byte the device sends is a well-formed frame,
 * and the interpreter of the input's records. Uses only the public API of es_link.h and
 * es_frame.h (and the es_link library target), so it survives changes inside the link.
 *
 * Input: a sequence of records, each starting with one op byte:
 *   0x00..0x3F  RAW    (op + 1) bytes follow, fed to es_link_rx as a port would
 *   0x40..0x7F  FRAME  a 2-byte little-endian length L, then L payload bytes (a serialized
 *                      Frame); the harness adds the CRC-32 and COBS and feeds the frame, so
 *                      mutations reach the protobuf dispatch instead of dying at the CRC
 *   0x80..0xBF  POLL   the clock advances (op & 0x3F) * 100 us, then es_link_poll runs while
 *                      it has work (sleeping the clock forward as it asks, boundedly)
 *   0xC0..0xFF  EVENT  op & 3: 0 resync, 1 disconnected, 2 rx overrun noted, 3 the clock
 *                      jumps 3 s (past the stream stall timeout) and es_link_poll runs
 * A record cut short by the end of the input takes what is there.
 */
#ifndef ES_FUZZ_COMMON_H
#define ES_FUZZ_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es_link.h"
#include "pb_decode.h"
#include "pb_encode.h"

/* The harness's own view of the device clock, in ns (CYCLES_HOST_NS, cycles_per_us 1000). */
static uint64_t fz_clock_ns;
/* Frames the device sent in this run, and the body of the last one. */
static uint32_t fz_frames_out;
static pb_size_t fz_last_body;
/* Decoder of what the device sends (its own buffer: a response may be up to a frame). */
static uint8_t fz_out_buf[ES_MAX_FRAME_BYTES + ES_FRAME_CRC_BYTES];
static es_frame_rx_t fz_out_rx;
static edgespike_Frame fz_out_frame;

/* ES_FUZZ_VERBOSE=1 in the environment: print every frame the device sends (replaying). */
static int fz_verbose = -1;

static void fz_fail(const char *what)
{
    fprintf(stderr, "fuzz harness: %s\n", what);
    abort();
}

static uint64_t fz_cycles(void *ctx)
{
    (void)ctx;
    fz_clock_ns += 1000u; /* time passes while the device works: 1 us per reading */
    return fz_clock_ns;
}

/* es_write_fn: every byte the device sends must decode to a valid Frame. */
static void fz_sink(void *ctx, const uint8_t *data, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; ++i) {
        const uint8_t *payload = NULL;
        size_t len = 0;
        es_rx_event_t ev = es_frame_rx_byte(&fz_out_rx, data[i], &payload, &len);
        if (ev == ES_RX_NONE) {
            continue;
        }
        if (ev != ES_RX_FRAME) {
            fz_fail("the device sent a malformed frame (bad CRC, COBS or length)");
        }
        pb_istream_t is = pb_istream_from_buffer(payload, len);
        if (!pb_decode(&is, edgespike_Frame_fields, &fz_out_frame)) {
            fz_fail("the device sent a frame whose protobuf does not decode");
        }
        if (fz_out_frame.which_body == 0u) {
            fz_fail("the device sent a frame without a body");
        }
        fz_last_body = fz_out_frame.which_body;
        fz_frames_out++;
        if (fz_verbose < 0) {
            fz_verbose = getenv("ES_FUZZ_VERBOSE") != NULL;
        }
        if (fz_verbose) {
            fprintf(stderr, "device -> seq %u body %u", (unsigned)fz_out_frame.seq,
                    (unsigned)fz_out_frame.which_body);
            if (fz_out_frame.which_body == edgespike_Frame_error_tag) {
                fprintf(stderr, " error %d: %s", (int)fz_out_frame.body.error.code,
                        fz_out_frame.body.error.message);
            }
            fprintf(stderr, "\n");
        }
    }
}

/* A fresh link on the fuzz port. */
static void fz_link_init(es_link_t *l)
{
    es_port_t p;
    memset(&p, 0, sizeof(p));
    p.write = fz_sink;
    p.cycles = fz_cycles;
    p.cycle_source = ES_CYCLES_HOST_NS;
    p.board = "fuzz";
    p.core = "host";
    p.clock_hz = 1000000000u;
    p.cycles_per_us = 1000u;
    fz_clock_ns = 1000000u;
    fz_frames_out = 0u;
    fz_last_body = 0u;
    es_frame_rx_init(&fz_out_rx, fz_out_buf, sizeof(fz_out_buf));
    es_link_init(l, &p);
}

/* Collects what es_frame_send writes, to feed it to the link. */
static uint8_t fz_wire[ES_COBS_MAX_ENCODED(ES_MAX_FRAME_BYTES + ES_FRAME_CRC_BYTES) + 1u];
static size_t fz_wire_len;

static void fz_collect(void *ctx, const uint8_t *data, size_t n)
{
    (void)ctx;
    if (fz_wire_len + n > sizeof(fz_wire)) {
        fz_fail("es_frame_send wrote more than a frame");
    }
    memcpy(fz_wire + fz_wire_len, data, n);
    fz_wire_len += n;
}

/* Frame a payload as a host would (CRC-32 + COBS + 0x00) and feed it to the link. Payloads
 * beyond the device's frame limit are cut (the RAW records cover over-long frames). */
static void fz_send_payload(es_link_t *l, const uint8_t *payload, size_t n)
{
    static uint8_t buf[ES_MAX_FRAME_BYTES + ES_FRAME_CRC_BYTES];
    if (n > ES_MAX_FRAME_BYTES) {
        n = ES_MAX_FRAME_BYTES;
    }
    memcpy(buf, payload, n);
    fz_wire_len = 0u;
    es_frame_send(buf, n, fz_collect, NULL);
    es_link_rx(l, fz_wire, fz_wire_len);
}

/* Run the stream while it has work; the clock sleeps forward as the link asks. */
static void fz_poll(es_link_t *l)
{
    for (int i = 0; i < 512; ++i) {
        uint32_t wait = es_link_poll(l);
        if (wait == ES_LINK_IDLE) {
            return;
        }
        if (wait > 0u) {
            if (wait > 50000u) {
                return; /* a long sleep (an idle stream): leave it to a later record */
            }
            fz_clock_ns += (uint64_t)wait * 1000u;
        }
    }
}

static void fz_run_records(es_link_t *l, const uint8_t *data, size_t size)
{
    size_t i = 0;
    while (i < size) {
        const uint8_t op = data[i++];
        const size_t left = size - i;
        if (op < 0x40u) {
            size_t n = (size_t)op + 1u;
            n = n < left ? n : left;
            es_link_rx(l, data + i, n);
            i += n;
        } else if (op < 0x80u) {
            size_t n = 0;
            if (left >= 2u) {
                n = (size_t)data[i] | ((size_t)data[i + 1] << 8);
                i += 2u;
            } else {
                i = size;
            }
            n = n < size - i ? n : size - i;
            fz_send_payload(l, data + i, n);
            i += n;
        } else if (op < 0xC0u) {
            fz_clock_ns += (uint64_t)(op & 0x3Fu) * 100000u;
            fz_poll(l);
        } else {
            switch (op & 3u) {
            case 0:
                es_link_resync(l);
                break;
            case 1:
                es_link_disconnected(l);
                break;
            case 2:
                es_link_note_rx_overrun(l, op);
                break;
            default:
                fz_clock_ns += 3000000000ull;
                fz_poll(l);
                break;
            }
        }
    }
    fz_poll(l);
}

/* Encode a Frame and send it (the stream harness's model upload). */
static void fz_send_frame(es_link_t *l, const edgespike_Frame *f)
{
    static uint8_t buf[ES_MAX_FRAME_BYTES];
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof(buf));
    if (!pb_encode(&os, edgespike_Frame_fields, f)) {
        fz_fail("cannot encode a Frame");
    }
    fz_send_payload(l, buf, os.bytes_written);
}

#endif /* ES_FUZZ_COMMON_H */
